import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

// Device and enrollment tokens are `<public id>.<secret>`: the id finds the row in O(1),
// the row holds only sha256(secret). A 256-bit random secret cannot be brute-forced, so
// a fast hash is enough (bcrypt here would cap heartbeats at a few dozen per second).

export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const actual = Buffer.from(hashSecret(secret), "hex");
  const expected = Buffer.from(storedHash, "hex");
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export function constantTimeEquals(a: string, b: string): boolean {
  const left = createHash("sha256").update(a).digest();
  const right = createHash("sha256").update(b).digest();
  return timingSafeEqual(left, right);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function formatToken(id: string, secret: string): string {
  return `${id}.${secret}`;
}

export function parseToken(token: string): { id: string; secret: string } | undefined {
  const dot = token.indexOf(".");
  if (dot < 0) return undefined;
  const id = token.slice(0, dot).toLowerCase();
  const secret = token.slice(dot + 1);
  if (!UUID.test(id) || secret.length < 32 || secret.length > 128) return undefined;
  return { id, secret };
}
