/** @jest-environment jsdom */
import { render, screen } from "@testing-library/react";
import { AuditDetails, AuditTarget, formatDetailValue, formatIdList } from "./audit-details";

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

  test("sums up a bulk command's device ids: a count, the first few short ids, every one on expanding", () => {
    const ids = Array.from({ length: 12 }, (_, index) => `${String(index).padStart(8, "0")}-be74-4f99-89c3-5ef056e21159`);
    expect(formatIdList("deviceIds", ids)).toBe("12 devices: 00000000, 00000001, 00000002 and 9 more");
    expect(formatIdList("deviceIds", ids.slice(0, 1))).toBe("1 device: 00000000");
    expect(formatIdList("groupIds", ids.slice(0, 2))).toBe("2 ids: 00000000, 00000001");
    expect(formatIdList("deviceIds", ["north", "tills"])).toBeUndefined();
    expect(formatIdList("deviceIds", [])).toBeUndefined();

    expect(formatDetailValue({ deviceIds: ids })).toBe("deviceIds: 12 devices: 00000000, 00000001, 00000002 and 9 more");

    // As a bulk command's entry holds them: under its target.
    render(<AuditDetails details={{ type: "lock", target: { deviceIds: ids }, total: 12 }} />);
    expect(screen.getByText("12 devices: 00000000, 00000001, 00000002 and 9 more")).toBeTruthy();
    expect(screen.queryByText(ids[0]!)).toBeNull();
    const links = screen.getAllByRole("link", { hidden: true });
    expect(links).toHaveLength(12);
    expect(links[11]!.getAttribute("href")).toBe(`/devices/${ids[11]}`);
    expect(links[11]!.textContent).toBe("00000011");
  });

  test("names the target, linked to the device page, instead of its bare id", () => {
    render(<AuditTarget entry={entry} />);
    const link = screen.getByRole("link", { name: "Till 3" });
    expect(link.getAttribute("href")).toBe(`/devices/${entry.targetId}`);
  });
});
