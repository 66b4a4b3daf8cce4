import { enrollmentTokenStatus, serverReach } from "./enrollment";

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
    expect(enrollmentTokenStatus({ ...token, usedCount: 10, expiresAt: "2026-11-24T10:00:00.000Z", revokedAt: "2026-11-24T09:00:00.000Z" }, NOW)).toBe(
      "revoked",
    );
  });
});

describe("serverReach", () => {
  test("loopback addresses reach only this machine", () => {
    for (const url of ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "http://0.0.0.0:8000"]) expect(serverReach(url)).toBe("loopback");
  });
  test("private addresses and local names reach only this network", () => {
    for (const url of ["http://10.0.0.5", "http://172.20.1.1:8000", "http://192.168.1.10:8000", "http://[fd12::1]:8000", "http://mdm.local", "http://mdm"])
      expect(serverReach(url)).toBe("private");
  });
  test("anything else is public", () => {
    for (const url of ["https://mdm.example.com", "http://203.0.113.7:8000", "http://172.32.0.1"]) expect(serverReach(url)).toBe("public");
  });
});
