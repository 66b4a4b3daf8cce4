import { randomUUID } from "node:crypto";
import type {
  CreateEnrollmentTokenRequest,
  CreateEnrollmentTokenResponse,
  EnrollmentToken as EnrollmentTokenView,
  ListEnrollmentTokensResponse,
} from "@mdm/contracts";
import type { EnrollmentToken as EnrollmentTokenRow } from "../../generated/prisma/client";
import type { DbOrTx } from "../../db/types";
import type { AppDeps, Clock } from "../../deps";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { formatToken, hashSecret, newSecret, parseToken, secretMatches } from "../../lib/secrets";

export async function createEnrollmentToken(
  { db, clock, env }: Pick<AppDeps, "db" | "clock" | "env">,
  input: CreateEnrollmentTokenRequest,
  actor: { name: string; ip?: string },
): Promise<CreateEnrollmentTokenResponse> {
  const id = randomUUID();
  const secret = newSecret();
  const row = await db.enrollmentToken.create({
    data: {
      id,
      secretHash: hashSecret(secret),
      label: input.label,
      maxUses: input.maxUses,
      expiresAt: new Date(clock.now().getTime() + input.expiresInSeconds * 1000),
      createdBy: actor.name,
    },
  });
  await recordAudit(db, {
    actor: actor.name,
    action: "enrollment_token.create",
    targetType: "enrollment_token",
    targetId: id,
    ip: actor.ip,
    details: { maxUses: input.maxUses, label: input.label },
  });
  return { ...toEnrollmentTokenView(row), token: formatToken(id, secret), publicApiUrl: env.PUBLIC_API_URL ?? null };
}

function toEnrollmentTokenView(row: EnrollmentTokenRow): EnrollmentTokenView {
  return {
    id: row.id,
    label: row.label,
    maxUses: row.maxUses,
    usedCount: row.usedCount,
    expiresAt: row.expiresAt.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
  };
}

export async function listEnrollmentTokens({ db, env }: Pick<AppDeps, "db" | "env">): Promise<ListEnrollmentTokensResponse> {
  const rows = await db.enrollmentToken.findMany({ orderBy: [{ createdAt: "desc" }, { id: "asc" }], take: 500 });
  return { tokens: rows.map(toEnrollmentTokenView), publicApiUrl: env.PUBLIC_API_URL ?? null };
}

export async function revokeEnrollmentToken(
  { db, clock }: Pick<AppDeps, "db" | "clock">,
  tokenId: string,
  actor: { name: string; ip?: string },
): Promise<EnrollmentTokenView> {
  // Revoking twice keeps the first revocation time.
  const { count } = await db.enrollmentToken.updateMany({ where: { id: tokenId, revokedAt: null }, data: { revokedAt: clock.now() } });
  const row = await db.enrollmentToken.findUnique({ where: { id: tokenId } });
  if (!row) throw new HttpError("not_found", "No enrollment token has this id");
  if (count === 1)
    await recordAudit(db, { actor: actor.name, action: "enrollment_token.revoke", targetType: "enrollment_token", targetId: tokenId, ip: actor.ip });
  return toEnrollmentTokenView(row);
}

/**
 * Checks an enrollment token and consumes one use, atomically: two devices racing for
 * the last use cannot both win. Returns the token's id.
 */
export async function consumeEnrollmentToken(db: DbOrTx, clock: Clock, token: string): Promise<string> {
  const invalid = () => new HttpError("unauthorized", "The enrollment token is invalid, expired, revoked or used up");
  const parsed = parseToken(token);
  if (!parsed) throw invalid();
  const row = await db.enrollmentToken.findUnique({ where: { id: parsed.id }, select: { secretHash: true } });
  if (!row || !secretMatches(parsed.secret, row.secretHash)) throw invalid();
  const consumed = await db.$executeRaw`
    UPDATE "EnrollmentToken" SET "usedCount" = "usedCount" + 1
    WHERE id = ${parsed.id}::uuid AND "revokedAt" IS NULL AND "expiresAt" > ${clock.now()} AND "usedCount" < "maxUses"`;
  if (consumed !== 1) throw invalid();
  return parsed.id;
}
