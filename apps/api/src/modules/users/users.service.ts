import { randomUUID } from "node:crypto";
import type { InviteUserRequest, InviteUserResponse, ListUsersResponse, UpdateUserRequest, UserView } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { Prisma } from "../../generated/prisma/client";
import { type AuditEntry, recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { enqueueMail, mailDelivery, wakeMailWorker } from "../../mail/outbox";
import { lockUsers, toUserView } from "../auth/auth.service";
import { INVITATION_TTL_SECONDS, createPasswordToken } from "../auth/password-reset.service";
import { NO_PASSWORD, hashPassword } from "../auth/passwords";

type Actor = { name: string; ip?: string };

/** Creates an admin with a password, whatever users exist (the CLI's way in). */
export async function createAdminUser(
  { db, env, clock }: Pick<AppDeps, "db" | "env" | "clock">,
  input: { email: string; password: string; name?: string },
  actor: Actor,
): Promise<UserView> {
  const passwordHash = await hashPassword(input.password, env.BCRYPT_COST);
  try {
    const user = await db.user.create({
      data: { id: randomUUID(), email: input.email, name: input.name ?? null, role: "admin", passwordHash, createdAt: clock.now() },
    });
    await recordAudit(db, {
      actor: actor.name,
      action: "user.create_admin",
      targetType: "user",
      targetId: user.id,
      ip: actor.ip,
      details: { email: user.email },
    });
    return toUserView(user);
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new HttpError("conflict", "A user has this email already");
    throw error;
  }
}

export async function listUsers({ db }: Pick<AppDeps, "db">): Promise<ListUsersResponse> {
  const users = await db.user.findMany({ orderBy: [{ createdAt: "asc" }, { id: "asc" }] });
  return { users: users.map(toUserView) };
}

/**
 * Creates a user without a password and mails them a link to set one (valid 7 days). The
 * user, the link's token and the mail in the outbox are written in one transaction: the
 * mail worker sends it (or, without a mail provider, records it for an admin to pass on).
 */
export async function inviteUser(deps: AppDeps, input: InviteUserRequest, actor: Actor): Promise<InviteUserResponse> {
  const { db, clock } = deps;
  let user: Awaited<ReturnType<typeof db.user.create>>;
  try {
    user = await db.$transaction(async (tx) => {
      const created = await tx.user.create({
        data: { id: randomUUID(), email: input.email, name: input.name ?? null, role: input.role, passwordHash: NO_PASSWORD, createdAt: clock.now() },
      });
      const { link } = await createPasswordToken(deps, tx, created.id, INVITATION_TTL_SECONDS);
      const text = [
        `${actor.name} invited you to the Keelson dashboard as ${created.role}.`,
        "",
        `Choose your password within 7 days here: ${link}`,
        "",
        "The link works once. If you did not expect this invitation, ignore this mail.",
        "",
      ].join("\n");
      await enqueueMail(tx, "invite", { to: [created.email], subject: "You are invited to Keelson", text }, clock.now());
      return created;
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new HttpError("conflict", "A user has this email already");
    throw error;
  }
  wakeMailWorker(deps);
  const mail = mailDelivery(deps);
  await recordAudit(db, {
    actor: actor.name,
    action: "user.invite",
    targetType: "user",
    targetId: user.id,
    ip: actor.ip,
    details: { email: user.email, role: user.role, mail },
  });
  return { ...toUserView(user), mail };
}

/**
 * Changes a user's role, name or disabled state. Refuses (409) to leave no active admin:
 * checked under the users lock, so two admins demoting each other cannot both succeed.
 * Disabling a user revokes their sessions.
 */
export async function updateUser(deps: AppDeps, userId: string, input: UpdateUserRequest, actor: Actor): Promise<UserView> {
  const { db, clock } = deps;
  const now = clock.now();
  const { before, after } = await db.$transaction(async (tx) => {
    await lockUsers(tx);
    const before = await tx.user.findUnique({ where: { id: userId } });
    if (!before) throw new HttpError("not_found", "No user has this id");
    const disabledAt = input.disabled === undefined ? before.disabledAt : input.disabled ? (before.disabledAt ?? now) : null;
    const role = input.role ?? before.role;
    const wasActiveAdmin = before.role === "admin" && before.disabledAt === null && before.passwordHash !== NO_PASSWORD;
    if (wasActiveAdmin && (role !== "admin" || disabledAt !== null)) {
      const otherAdmins = await tx.user.count({ where: { role: "admin", disabledAt: null, passwordHash: { not: NO_PASSWORD }, id: { not: userId } } });
      if (otherAdmins === 0) throw new HttpError("conflict", "This is the last active admin: make another user admin first");
    }
    const after = await tx.user.update({ where: { id: userId }, data: { role, disabledAt, ...(input.name !== undefined ? { name: input.name } : {}) } });
    if (disabledAt && !before.disabledAt) await tx.session.updateMany({ where: { userId, revokedAt: null }, data: { revokedAt: now } });
    return { before, after };
  });

  const entry = { actor: actor.name, targetType: "user", targetId: userId, ip: actor.ip };
  const changes: AuditEntry[] = [];
  if (after.role !== before.role) changes.push({ ...entry, action: "user.role_change", details: { from: before.role, to: after.role } });
  if ((after.disabledAt === null) !== (before.disabledAt === null)) changes.push({ ...entry, action: after.disabledAt ? "user.disable" : "user.enable" });
  if (after.name !== before.name) changes.push({ ...entry, action: "user.rename", details: { from: before.name, to: after.name } });
  for (const change of changes) await recordAudit(db, change);
  return toUserView(after);
}
