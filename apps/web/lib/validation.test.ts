import { z } from "zod";
import { NewPassword, SetupRequest } from "@mdm/contracts";
import { ApiError, errorMessage } from "./api";
import { fieldErrors, humanMessage, labelOfPath } from "./validation";

/** The message the contracts give for `input` refused by `schema`. */
function messageOf(schema: z.ZodType, input: unknown): string {
  const result = schema.safeParse(input);
  if (result.success) throw new Error("accepted");
  return result.error.issues[0]!.message;
}

test("the contracts' messages become sentences that say what to do, naming the field", () => {
  expect(humanMessage(messageOf(z.string().min(1), ""), "Email")).toBe("Enter email.");
  expect(humanMessage(messageOf(z.object({ name: z.string() }), {}), "Your name")).toBe("Enter your name.");
  expect(humanMessage(messageOf(z.string().max(200), "x".repeat(201)))).toBe("Use at most 200 characters.");
  expect(humanMessage(messageOf(z.string().min(3), "x"))).toBe("Use at least 3 characters.");
  expect(humanMessage(messageOf(z.number().min(5), 1))).toBe("Enter a number of at least 5.");
  expect(humanMessage(messageOf(z.number(), Number.NaN))).toBe("Enter a number.");
  expect(humanMessage(messageOf(z.number().int(), 1.5))).toBe("Enter a whole number.");
  expect(humanMessage(messageOf(z.email(), "nobody"))).toBe("Enter an email address, like name@example.com.");
  expect(humanMessage(messageOf(z.enum(["a", "b"]), "c"), "Role")).toBe("Choose a valid role.");
  expect(humanMessage(messageOf(z.strictObject({}), { extra: 1 }))).toBe("The form sent a field the server does not know: reload the page.");
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

test("a path names its field in words, list indexes left out", () => {
  expect(labelOfPath("settings.requiredApps.0.minVersionCode")).toBe("min version code");
  expect(labelOfPath("email")).toBe("email");
  expect(labelOfPath("")).toBeUndefined();
});

test("an API refusal says each distinct problem once, naming its field in words", () => {
  const refusal = new ApiError(400, "validation_failed", "Invalid body", [
    { path: "settings.kiosk.lockTaskPackages.0", message: "Must be an Android package name" },
    { path: "settings.kiosk.lockTaskPackages.1", message: "Must be an Android package name" },
    { path: "settings.requiredApps.0.minVersionCode", message: "Must be a number (got null)" },
  ]);
  expect(errorMessage(refusal)).toBe("Must be an Android package name. Enter min version code.");
});
