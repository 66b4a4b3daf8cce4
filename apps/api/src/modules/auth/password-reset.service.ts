import { randomUUID } from "node:crypto";
import type { PasswordResetAccepted, PasswordResetCheckResponse, PasswordResetConfirmRequest } from "@mdm/contracts";
import type { DbOrTx } from "../../db/types";
import type { AppDeps } from "../../deps";
import { ANONYMOUS, recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { formatToken, hashSecret, newSecret, parseToken, secretMatches } from "../../lib/secrets";
import { enqueueMail, mailDelivery, wakeMailWorker } from "../../mail/outbox";
import type { ClientInfo } from "./auth.service";
import { hashPassword } from "./passwords";

export const PASSWORD_RESET_TTL_SECONDS = 30 * 60;
export const INVITATION_TTL_SECONDS = 7 * 24 * 3600;

/**
 * The one answer to every reset request, so it tells nobody whether an account exists.
 * Whether mail is sent at all is the server's configuration, the same for every address.
 */
export function passwordResetAccepted(deps: Pick<AppDeps, "mailer">): PasswordResetAccepted {
  const mail = mailDelivery(deps);
  return {
    message:
      mail === "queued"
        ? "If an account uses this address, a link to reset its password is on its way."
        : "If an account uses this address, a link to reset its password was recorded, not sent: this server sends no mail. An admin can find the link on the Mail page.",
    mail,
  };
}

/**
 * A single-use token for setting a user's password: `<id>.<secret>`, with 32 random
 * bytes of secret of which only the sha256 is stored. Returns the dashboard link.
 */
export async function createPasswordToken(
  { env, clock }: Pick<AppDeps, "env" | "clock">,
  db: DbOrTx,
  userId: string,
  ttlSeconds: number,
): Promise<{ link: string; expiresAt: Date }> {
  const id = randomUUID();
  const secret = newSecret();
  const now = clock.now();
  const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
  await db.passwordResetToken.create({ data: { id, userId, tokenHash: hashSecret(secret), expiresAt, createdAt: now } });
  return { link: `${env.WEB_URL}/reset-password?token=${encodeURIComponent(formatToken(id, secret))}`, expiresAt };
}

/**
 * Records the request and answers at once: the same single INSERT whether or not an
 * account has this address, so neither the answer nor its timing tells. The mail worker
 * does the rest (handlePasswordResetRequests).
 */
export async function requestPasswordReset(deps: AppDeps, email: string, client: ClientInfo): Promise<PasswordResetAccepted> {
  await deps.db.passwordResetRequest.create({ data: { email, ip: client.ip, userAgent: client.userAgent, requestedAt: deps.clock.now() } });
  wakeMailWorker(deps);
  return passwordResetAccepted(deps);
}

const RESET_REQUEST_BATCH = 20;

/**
 * Handles recorded reset requests: audits each, and when an enabled account has the
 * address, creates its token and queues the mail. Each request's row is deleted in the
 * same transaction, so a crash leaves it to be handled again, never half done. Returns how
 * many it handled.
 */
export async function handlePasswordResetRequests(deps: Pick<AppDeps, "db" | "env" | "clock" | "mailer">): Promise<number> {
  return deps.db.$transaction(async (tx) => {
    const requests = await tx.$queryRaw<Array<{ email: string; ip: string | null; userAgent: string | null }>>`
      DELETE FROM "PasswordResetRequest" WHERE id IN (
        SELECT id FROM "PasswordResetRequest" ORDER BY id LIMIT ${RESET_REQUEST_BATCH} FOR UPDATE SKIP LOCKED)
      RETURNING email, ip, "userAgent"`;
    const mail = mailDelivery(deps);
    for (const request of requests) {
      const user = await tx.user.findUnique({ where: { email: request.email }, select: { id: true, email: true, disabledAt: true } });
      const eligible = !!user && !user.disabledAt;
      const recentLink = eligible ? await recentResetLink(deps, tx, user.id) : undefined;
      await recordAudit(tx, {
        actor: ANONYMOUS,
        action: "auth.password_reset.request",
        targetType: "user",
        targetId: user?.id,
        ip: request.ip ?? undefined,
        details: {
          email: request.email,
          eligible,
          mail: eligible && !recentLink ? mail : null,
          ...(recentLink && { skipped: `a link mailed at ${recentLink.createdAt.toISOString()} is still valid` }),
        },
      });
      if (!eligible || recentLink) continue;
      const { link } = await createPasswordToken(deps, tx, user.id, PASSWORD_RESET_TTL_SECONDS);
      const text = [
        `Someone (hopefully you) asked to reset the password of the Keelson account ${user.email}.`,
        "",
        `Choose a new password within 30 minutes here: ${link}`,
        "",
        "The link works once. If you did not ask for it, ignore this mail: your password stays as it is.",
        "",
      ].join("\n");
      await enqueueMail(tx, "password_reset", { to: [user.email], subject: "Reset your Keelson password", text }, deps.clock.now());
    }
    return requests.length;
  });
}

/**
 * A link for this user, unused and unexpired, mailed within PASSWORD_RESET_MAIL_INTERVAL_SECONDS:
 * while there is one, further requests send nothing. The user's row is locked first, so
 * two instances handling requests for one account at once still send a single mail.
 */
async function recentResetLink(deps: Pick<AppDeps, "env" | "clock">, tx: DbOrTx, userId: string): Promise<{ createdAt: Date } | null> {
  const interval = deps.env.PASSWORD_RESET_MAIL_INTERVAL_SECONDS;
  if (interval === 0) return null;
  await tx.$executeRaw`SELECT 1 FROM "User" WHERE id = ${userId}::uuid FOR UPDATE`;
  const now = deps.clock.now();
  return tx.passwordResetToken.findFirst({
    where: { userId, usedAt: null, expiresAt: { gt: now }, createdAt: { gt: new Date(now.getTime() - interval * 1000) } },
    select: { createdAt: true },
  });
}

/** Handles every recorded reset request, a batch at a time. */
export async function handleAllPasswordResetRequests(deps: Pick<AppDeps, "db" | "env" | "clock" | "mailer">): Promise<void> {
  while ((await handlePasswordResetRequests(deps)) === RESET_REQUEST_BATCH);
}

function invalidToken() {
  return new HttpError("unauthorized", "This link is invalid, expired or already used; ask for a new one");
}

/** Whether a reset or invitation token can still set a password, without using it. */
export async function checkPasswordReset(deps: Pick<AppDeps, "db" | "clock">, token: string): Promise<PasswordResetCheckResponse> {
  const refused = { valid: false, expiresAt: null };
  const parsed = parseToken(token);
  if (!parsed) return refused;
  const row = await deps.db.passwordResetToken.findUnique({ where: { id: parsed.id }, include: { user: { select: { disabledAt: true } } } });
  if (!row || !secretMatches(parsed.secret, row.tokenHash) || row.user.disabledAt || row.usedAt || row.expiresAt <= deps.clock.now()) return refused;
  return { valid: true, expiresAt: row.expiresAt.toISOString() };
}

/**
 * Sets the password with a reset or invitation token. The token is consumed atomically
 * (a second use fails), every other pending link of the user dies with it, and every
 * session of the user is revoked.
 */
export async function confirmPasswordReset(deps: AppDeps, input: PasswordResetConfirmRequest, client: ClientInfo): Promise<void> {
  const parsed = parseToken(input.token);
  if (!parsed) throw invalidToken();
  const row = await deps.db.passwordResetToken.findUnique({ where: { id: parsed.id }, include: { user: { select: { email: true, disabledAt: true } } } });
  if (!row || !secretMatches(parsed.secret, row.tokenHash) || row.user.disabledAt) throw invalidToken();

  const passwordHash = await hashPassword(input.password, deps.env.BCRYPT_COST);
  const now = deps.clock.now();
  await deps.db.$transaction(async (tx) => {
    const consumed = await tx.passwordResetToken.updateMany({ where: { id: row.id, usedAt: null, expiresAt: { gt: now } }, data: { usedAt: now } });
    if (consumed.count !== 1) throw invalidToken();
    await tx.user.update({ where: { id: row.userId }, data: { passwordHash } });
    await tx.passwordResetToken.updateMany({ where: { userId: row.userId, usedAt: null }, data: { usedAt: now } });
    await tx.session.updateMany({ where: { userId: row.userId, revokedAt: null }, data: { revokedAt: now } });
  });
  await recordAudit(deps.db, { actor: row.user.email, action: "auth.password_reset.confirm", targetType: "user", targetId: row.userId, ip: client.ip });
}
