import { enrollmentTokenStatus } from "./enrollment";

const NOW = Date.parse("2026-11-25T10:00:00.000Z");
const token = { maxUses: 10, usedCount: 3, expiresAt: "2026-11-26T10:00:00.000Z", revokedAt: null };

describe("enrollmentTokenStatus", () => {
  test("a token with uses left before its expiry is active", () => {
    expect(enrollmentTokenStatus(token, NOW)).toBe("active");
  });

  test("a token is expired from its expiry on", () => {
    expect(enrollmentTokenStatus({ ...token, expiresAt: "2026-11-25T10:00:00.000Z" }, NOW)).toBe("expired");
  });

  test("a token whose every use is spent is used up, even once it has expired", () => {
    expect(enrollmentTokenStatus({ ...token, usedCount: 10 }, NOW)).toBe("used up");
    expect(enrollmentTokenStatus({ ...token, usedCount: 10, expiresAt: "2026-11-24T10:00:00.000Z" }, NOW)).toBe("used up");
  });

  test("revocation wins over every other state", () => {
    expect(enrollmentTokenStatus({ ...token, usedCount: 10, expiresAt: "2026-11-24T10:00:00.000Z", revokedAt: "2026-11-24T09:00:00.000Z" }, NOW)).toBe("revoked");
  });
});
