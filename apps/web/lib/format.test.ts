import { actorLabel, formatRelative, formatTime, formatUntil, shortId } from "./format";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");
const at = (offsetSeconds: number) => new Date(NOW + offsetSeconds * 1000).toISOString();

describe("formatRelative", () => {
  test("past times read as ago", () => {
    expect(formatRelative(at(-3), NOW)).toBe("just now");
    expect(formatRelative(at(-120), NOW)).toBe("2 minutes ago");
    expect(formatRelative(null, NOW)).toBe("never");
  });

  test("a time after now (clock skew, a frame newer than the last tick) is just now, never in the future", () => {
    expect(formatRelative(at(11), NOW)).toBe("just now");
    expect(formatRelative(at(3_600), NOW)).toBe("just now");
  });
});

test("formatUntil says how long until a deadline, and how long since once it passed", () => {
  expect(formatUntil(at(7_200), NOW)).toBe("in 2 hours");
  expect(formatUntil(at(-120), NOW)).toBe("2 minutes ago");
});

test("status history times show seconds", () => {
  expect(formatTime(at(7))).toMatch(/\d{2}:\d{2}:\d{2}/);
});

describe("actorLabel", () => {
  test("names an admin key as the audit log does, anyone else as is", () => {
    expect(actorLabel("admin-key:4216fd4ba56d")).toBe("Admin key (ADMIN_KEY 4216fd4ba56d)");
    expect(actorLabel("ops@example.com")).toBe("ops@example.com");
  });
});

describe("shortId", () => {
  it("shortens a UUID to its first 8 digits and leaves any other id whole", () => {
    expect(shortId("11e87a8f-0c1d-4e2f-9a3b-5c6d7e8f9a0b")).toBe("11e87a8f");
    expect(shortId("com.keelson.fixture")).toBe("com.keelson.fixture");
  });
});
