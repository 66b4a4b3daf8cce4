import type { DbOrTx } from "../../db/types";
import type { AppDeps } from "../../deps";
import { constantTimeEquals, hashSecret, newSecret } from "../../lib/secrets";

// First-admin setup from anywhere but this host needs a one-time token, printed in the
// API's log at start while no user exists. Only its sha256 is kept, as a row in the table
// of used admin nonces (housekeeping prunes it once expired), so every instance accepts
// the token any of them printed; creating the first admin deletes them all.

const PREFIX = "setup-token:";
const SETUP_TOKEN_TTL_MS = 7 * 24 * 3600_000;

/** A new setup token while no user exists (one per start, each valid 7 days), else undefined. */
export async function issueSetupToken({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<string | undefined> {
  if ((await db.user.count()) > 0) return undefined;
  const token = newSecret();
  await db.usedNonce.create({ data: { nonce: `${PREFIX}${hashSecret(token)}`, expiresAt: new Date(clock.now().getTime() + SETUP_TOKEN_TTL_MS) } });
  return token;
}

/** The token is one an instance printed and still valid, or the operator's SETUP_TOKEN. */
export async function setupTokenValid({ env, clock }: Pick<AppDeps, "env" | "clock">, db: DbOrTx, token: string | undefined): Promise<boolean> {
  if (!token) return false;
  if (env.SETUP_TOKEN && constantTimeEquals(token, env.SETUP_TOKEN)) return true;
  const row = await db.usedNonce.findUnique({ where: { nonce: `${PREFIX}${hashSecret(token)}` } });
  return row !== null && row.expiresAt > clock.now();
}

export async function discardSetupTokens(db: DbOrTx): Promise<void> {
  await db.usedNonce.deleteMany({ where: { nonce: { startsWith: PREFIX } } });
}
