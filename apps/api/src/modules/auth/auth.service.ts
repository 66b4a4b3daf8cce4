import { randomUUID } from "node:crypto";
import type { LoginRequest, SetupRequest, SetupStatusResponse, UserView, WsTicketResponse } from "@mdm/contracts";
import type { DbOrTx } from "../../db/types";
import type { AppDeps } from "../../deps";
import type { User } from "../../generated/prisma/client";
import { ANONYMOUS, recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { formatToken, hashSecret, newSecret, parseToken, secretMatches } from "../../lib/secrets";
import { NO_PASSWORD, hashPassword, passwordMatches } from "./passwords";
import { discardSetupTokens, setupTokenValid } from "./setup-token";
import { REFRESH_TOKEN_TTL_SECONDS, csrfTokenFor, signAccessToken, signWsTicket } from "./tokens";

/** Who is calling, as the audit log and the session record keep it. */
export type ClientInfo = {
  ip?: string;
  userAgent?: string;
  /**
   * Reached the API from this host without passing any proxy. Not the same as a loopback
   * `ip`: a reverse proxy in front of the dashboard on this host makes every browser look
   * local, but it adds its forwarding headers.
   */
  directFromThisHost?: boolean;
};

/** What signing in (or refreshing) hands out; the routes turn it into cookies and a SessionResponse. */
export type IssuedSession = {
  user: UserView;
  sessionId: string;
  accessToken: string;
  accessTokenExpiresAt: Date;
  csrfToken: string;
  refreshToken?: string;
};

type Deps = Pick<AppDeps, "db" | "env" | "clock">;

// A second tab refreshing with the same token a moment after the first is let through
// (without a new refresh token); the same token any later means it was copied.
const REFRESH_REUSE_GRACE_MS = 10_000;

export function toUserView(user: User): UserView {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    disabled: user.disabledAt !== null,
    pending: user.passwordHash === NO_PASSWORD,
    createdAt: user.createdAt.toISOString(),
  };
}

/**
 * Serializes changes to the set of users and roles (first-admin setup, demotions), so
 * two concurrent calls cannot both see "no user yet" or both remove "another admin".
 */
export async function lockUsers(tx: DbOrTx): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('mdm:users'))`;
}

function unauthorizedRefresh() {
  return new HttpError("unauthorized", "The refresh token is missing, expired, revoked or already used; sign in again");
}

function issueAccess({ env, clock }: Deps, user: User, sessionId: string, refreshToken?: string): IssuedSession {
  const access = signAccessToken(env, clock.now(), { userId: user.id, role: user.role, sessionId });
  return {
    user: toUserView(user),
    sessionId,
    accessToken: access.token,
    accessTokenExpiresAt: access.expiresAt,
    csrfToken: csrfTokenFor(env, sessionId),
    refreshToken,
  };
}

async function startSession(deps: Deps, user: User, client: ClientInfo): Promise<IssuedSession> {
  const now = deps.clock.now();
  const id = randomUUID();
  const secret = newSecret();
  await deps.db.session.create({
    data: {
      id,
      userId: user.id,
      refreshHash: hashSecret(secret),
      expiresAt: new Date(now.getTime() + REFRESH_TOKEN_TTL_SECONDS * 1000),
      createdAt: now,
      lastUsedAt: now,
      ip: client.ip,
      userAgent: client.userAgent?.slice(0, 512),
    },
  });
  return issueAccess(deps, user, id, formatToken(id, secret));
}

export async function setupStatus({ db }: Pick<AppDeps, "db">, client: ClientInfo): Promise<SetupStatusResponse> {
  const needed = (await db.user.count()) === 0;
  return { needed, tokenRequired: needed && !client.directFromThisHost };
}

/**
 * Creates the first admin, only while there is no user at all, and signs them in. Any
 * client but a direct call from this host (the CLI, curl on the server) must present a
 * setup token: from the log, or SETUP_TOKEN (README: first admin). The dashboard relays
 * requests, so through it the token is always asked for.
 */
export async function setupFirstAdmin(deps: Deps, input: SetupRequest, client: ClientInfo): Promise<IssuedSession> {
  const passwordHash = await hashPassword(input.password, deps.env.BCRYPT_COST);
  const user = await deps.db.$transaction(async (tx) => {
    await lockUsers(tx);
    if ((await tx.user.count()) > 0) throw new HttpError("conflict", "Setup is done: an account already exists; sign in instead");
    if (!client.directFromThisHost && !(await setupTokenValid(deps, tx, input.setupToken))) {
      throw new HttpError(
        "unauthorized",
        input.setupToken
          ? 'This setup token is not the one the API printed: copy it again from the API\'s log at start (the line "no user yet"), or use SETUP_TOKEN'
          : 'The setup token is missing: the API prints it in its log at start (the line "no user yet")',
      );
    }
    await discardSetupTokens(tx);
    return tx.user.create({
      data: { id: randomUUID(), email: input.email, name: input.name ?? null, passwordHash, role: "admin", createdAt: deps.clock.now() },
    });
  });
  await recordAudit(deps.db, { actor: user.email, action: "auth.setup", targetType: "user", targetId: user.id, ip: client.ip });
  return startSession(deps, user, client);
}

/** Signs in. A wrong email, wrong password, disabled or password-less account all get the same 401. */
export async function login(deps: Deps, input: LoginRequest, client: ClientInfo): Promise<IssuedSession> {
  const user = await deps.db.user.findUnique({ where: { email: input.email } });
  const matches = await passwordMatches(input.password, user?.passwordHash, deps.env.BCRYPT_COST);
  const refusal = !user
    ? "unknown_email"
    : user.passwordHash === NO_PASSWORD
      ? "no_password"
      : !matches
        ? "wrong_password"
        : user.disabledAt
          ? "disabled"
          : undefined;
  if (refusal) {
    // Nobody proved who they are: the email they typed is a detail, never the actor.
    await recordAudit(deps.db, {
      actor: ANONYMOUS,
      action: "auth.login_failed",
      targetType: "user",
      targetId: user?.id,
      ip: client.ip,
      details: { email: input.email, reason: refusal },
    });
    throw new HttpError("unauthorized", "Wrong email or password");
  }
  await recordAudit(deps.db, { actor: user!.email, action: "auth.login", targetType: "user", targetId: user!.id, ip: client.ip });
  return startSession(deps, user!, client);
}

/**
 * Exchanges a refresh token for a new access token and a new refresh token; the old one
 * stops working. Presenting a replaced token again revokes the whole session: either the
 * user or a thief holds a copy, and only a new sign-in tells them apart.
 */
export async function refreshSession(deps: Deps, refreshToken: string, client: ClientInfo): Promise<IssuedSession> {
  const parsed = parseToken(refreshToken);
  if (!parsed) throw unauthorizedRefresh();
  const { db, clock } = deps;
  const now = clock.now();
  const session = await db.session.findUnique({ where: { id: parsed.id }, include: { user: true } });
  if (!session || session.revokedAt || session.expiresAt <= now || session.user.disabledAt) throw unauthorizedRefresh();

  if (secretMatches(parsed.secret, session.refreshHash)) {
    const secret = newSecret();
    const rotated = await db.session.updateMany({
      where: { id: session.id, refreshHash: session.refreshHash, revokedAt: null },
      data: {
        refreshHash: hashSecret(secret),
        previousRefreshHash: session.refreshHash,
        lastUsedAt: now,
        expiresAt: new Date(now.getTime() + REFRESH_TOKEN_TTL_SECONDS * 1000),
        ip: client.ip,
        userAgent: client.userAgent?.slice(0, 512),
      },
    });
    if (rotated.count === 1) return issueAccess(deps, session.user, session.id, formatToken(session.id, secret));
  }

  // Not the current token: the one just replaced (a concurrent refresh), or a reused one.
  const current = await db.session.findUnique({ where: { id: session.id } });
  const justReplaced =
    current?.previousRefreshHash &&
    !current.revokedAt &&
    secretMatches(parsed.secret, current.previousRefreshHash) &&
    now.getTime() - current.lastUsedAt.getTime() <= REFRESH_REUSE_GRACE_MS;
  if (justReplaced) return issueAccess(deps, session.user, session.id);

  await db.session.updateMany({ where: { id: session.id, revokedAt: null }, data: { revokedAt: now } });
  await recordAudit(db, { actor: session.user.email, action: "auth.refresh_reused", targetType: "session", targetId: session.id, ip: client.ip });
  throw unauthorizedRefresh();
}

/** Revokes a session (idempotent). */
export async function logout({ db, clock }: Pick<AppDeps, "db" | "clock">, sessionId: string, client: ClientInfo): Promise<void> {
  const session = await db.session.findUnique({ where: { id: sessionId }, select: { revokedAt: true, user: { select: { id: true, email: true } } } });
  if (!session || session.revokedAt) return;
  await db.session.updateMany({ where: { id: sessionId, revokedAt: null }, data: { revokedAt: clock.now() } });
  await recordAudit(db, { actor: session.user.email, action: "auth.logout", targetType: "user", targetId: session.user.id, ip: client.ip });
}

/** The signed-in user, as the dashboard shows them. */
export async function currentUser({ db }: Pick<AppDeps, "db">, userId: string): Promise<UserView> {
  const user = await db.user.findUnique({ where: { id: userId } });
  if (!user) throw new HttpError("unauthorized", "Sign in first: the session is missing, expired or revoked");
  return toUserView(user);
}

/** A ticket for one dashboard socket, bound to the caller's session (README: dashboard channel). */
export function issueWsTicket({ env, clock }: Pick<AppDeps, "env" | "clock">, user: { id: string; role: User["role"]; sessionId: string }): WsTicketResponse {
  const { token, expiresAt } = signWsTicket(env, clock.now(), { userId: user.id, role: user.role, sessionId: user.sessionId });
  return { ticket: token, expiresAt: expiresAt.toISOString() };
}
