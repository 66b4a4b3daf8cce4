import { z } from "zod";
import { NewPassword, SetupRequest } from "@mdm/contracts";
import { fieldErrors, humanMessage } from "./validation";

test("zod's default messages become sentences that name the field", () => {
  const empty = z.string().min(1).safeParse("");
  expect(empty.success).toBe(false);
  expect(humanMessage(empty.error!.issues[0]!.message, "Email")).toBe("Enter email.");
  expect(humanMessage("Too small: expected string to have >=1 characters", "Your name")).toBe("Enter your name.");
  expect(humanMessage("Too big: expected string to have <=200 characters")).toBe("Use at most 200 characters.");
  expect(humanMessage("Invalid email address")).toBe("Enter an email address, like name@example.com.");
  expect(humanMessage("Must be at least 12 characters")).toBe("Must be at least 12 characters.");
});

test("a form's errors come all at once, one per field, none in zod's words", () => {
  const parsed = SetupRequest.safeParse({ email: "not an address", password: "short" });
  expect(parsed.success).toBe(false);
  const errors = fieldErrors(parsed.error!.issues, { email: "Email", password: "Password" });
  expect(Object.keys(errors).sort()).toEqual(["email", "password"]);
  for (const message of Object.values(errors)) expect(message).not.toMatch(/Too small|Invalid input|expected/);
  expect(NewPassword.safeParse("x".repeat(12)).success).toBe(true);
});
