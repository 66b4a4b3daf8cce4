import bcrypt from "bcryptjs";

/** Stored for users who have no password yet (invited): no bcrypt hash ever matches it. */
export const NO_PASSWORD = "";

export function hashPassword(password: string, cost: number): Promise<string> {
  return bcrypt.hash(password, cost);
}

// A hash of a password nobody knows, per cost: checking a login for an unknown email (or an
// account without a password) against it costs as much as checking a real one.
const dummyHashes = new Map<number, Promise<string>>();

function dummyHash(cost: number): Promise<string> {
  let hash = dummyHashes.get(cost);
  if (!hash) {
    hash = bcrypt.hash(`no-such-user-${Math.random()}`, cost);
    dummyHashes.set(cost, hash);
  }
  return hash;
}

/**
 * Whether `password` matches `storedHash`. Without a usable hash it still spends one
 * bcrypt comparison, so the answer's timing does not tell whether the account exists.
 */
export async function passwordMatches(password: string, storedHash: string | undefined, cost: number): Promise<boolean> {
  if (!storedHash || storedHash === NO_PASSWORD) {
    await bcrypt.compare(password, await dummyHash(cost));
    return false;
  }
  return bcrypt.compare(password, storedHash);
}
