import { signAccessToken, signWsTicket, verifyAccessToken, verifyWsTicket } from "./tokens";

const claims = { userId: "0b7e6c1a-5d0e-4f4e-9a43-3f2f5c1d2e10", role: "admin" as const, sessionId: "5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" };
const first = { JWT_SECRET: "first-jwt-secret-0123456789abcdef0123456789" };
const second = { JWT_SECRET: "second-jwt-secret-0123456789abcdef012345678" };

// The key object made from JWT_SECRET is kept between calls: a token must still be checked
// against the secret each call names, however the calls alternate.
it("accepts a token under the secret that signed it only, whichever secret was used last", () => {
  const now = new Date();
  const underFirst = signAccessToken(first, now, claims).token;
  const underSecond = signAccessToken(second, now, claims).token;
  for (let round = 0; round < 2; round++) {
    expect(verifyAccessToken(first, now, underFirst)).toEqual({ userId: claims.userId, sessionId: claims.sessionId });
    expect(verifyAccessToken(second, now, underFirst)).toBeUndefined();
    expect(verifyAccessToken(second, now, underSecond)).toEqual({ userId: claims.userId, sessionId: claims.sessionId });
    expect(verifyAccessToken(first, now, underSecond)).toBeUndefined();
  }
  const ticket = signWsTicket(second, now, claims).token;
  expect(verifyWsTicket(first, ticket, now)).toBeUndefined();
  expect(verifyWsTicket(second, ticket, now)).toMatchObject({ userId: claims.userId, role: "admin" });
});
