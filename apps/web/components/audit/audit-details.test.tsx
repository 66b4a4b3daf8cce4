/** @jest-environment jsdom */
import { render, screen } from "@testing-library/react";
import { AuditDetails, AuditTarget, formatDetailValue } from "./audit-details";

const entry = {
  id: "1",
  at: "2026-11-25T12:00:00.000Z",
  actor: "admin-key:abc",
  actorName: "Admin key (ADMIN_KEY abc)",
  action: "device.update",
  targetType: "device",
  targetId: "2521a12c-be74-4f99-89c3-5ef056e21159",
  targetName: "Till 3",
  ip: null,
  details: null,
};

describe("audit details", () => {
  test("renders values for people: text, lists, nested objects", () => {
    expect(formatDetailValue("ops@example.com")).toBe("ops@example.com");
    expect(formatDetailValue(["north", "tills"])).toBe("north, tills");
    expect(formatDetailValue({ group: "north", count: 3 })).toBe("group: north; count: 3");
    expect(formatDetailValue(null)).toBe("—");
  });

  test("lists every field of long details in full, never cut off", () => {
    const long = "x".repeat(300);
    render(<AuditDetails details={{ subject: long, recipients: ["a@example.com", "b@example.com"] }} />);
    expect(screen.getByText(long)).toBeTruthy();
    expect(screen.getByText("a@example.com, b@example.com")).toBeTruthy();
  });

  test("names the target, linked to the device page, instead of its bare id", () => {
    render(<AuditTarget entry={entry} />);
    const link = screen.getByRole("link", { name: "Till 3" });
    expect(link.getAttribute("href")).toBe(`/devices/${entry.targetId}`);
  });
});
