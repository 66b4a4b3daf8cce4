import type { IncomingMessage } from "node:http";
import { CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE, SESSION_COOKIE, type UserRole, WS_TICKET_PROTOCOL_PREFIX } from "@mdm/contracts";
import type { CookieOptions, NextFunction, Request, Response } from "express";
import type { Env } from "../../config/env";
import type { AppDeps } from "../../deps";
import { parseCookies } from "../../lib/cookies";
import { Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";
import { constantTimeEquals } from "../../lib/secrets";
import type { DashboardAuthenticator } from "../../realtime/attach";
import { REFRESH_TOKEN_TTL_SECONDS, csrfTokenFor, roleAtLeast, verifyAccessToken, verifyWsTicket } from "./tokens";

export { verifyWsTicket } from "./tokens";

/** The signed-in user of a request. */
export type SessionUser = {
  id: string;
  email: string;
  role: UserRole;
  sessionId: string;
  /** Authenticated by the session cookie (so writes need the CSRF token), not a bearer token. */
  viaCookie: boolean;
};

type SessionDeps = Pick<AppDeps, "db" | "env" | "clock">;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The access token of a request: `Authorization: Bearer` first, else the session cookie. */
function accessTokenOf(req: IncomingMessage): { token: string; viaCookie: boolean } | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    return match ? { token: match[1]!, viaCookie: false } : undefined;
  }
  const cookie = parseCookies(req)[SESSION_COOKIE];
  return cookie ? { token: cookie, viaCookie: true } : undefined;
}

/** The session's user when it is live: not revoked, not expired, user not disabled. */
async function liveSessionUser({ db, clock }: Pick<AppDeps, "db" | "clock">, sessionId: string, userId: string) {
  const session = await db.session.findUnique({
    where: { id: sessionId },
    select: { userId: true, revokedAt: true, expiresAt: true, user: { select: { id: true, email: true, role: true, disabledAt: true } } },
  });
  if (!session || session.userId !== userId || session.revokedAt || session.expiresAt <= clock.now() || session.user.disabledAt) return undefined;
  return session.user;
}

/**
 * The signed-in user of a request (an HTTP request or a WebSocket upgrade), or undefined.
 * The role is read from the database, so a demotion takes effect at the next request.
 */
export async function authenticateSession(deps: SessionDeps, req: IncomingMessage): Promise<SessionUser | undefined> {
  const presented = accessTokenOf(req);
  if (!presented) return undefined;
  const claims = verifyAccessToken(deps.env, deps.clock.now(), presented.token);
  if (!claims) return undefined;
  const user = await liveSessionUser(deps, claims.sessionId, claims.userId);
  if (!user) return undefined;
  return { id: user.id, email: user.email, role: user.role, sessionId: claims.sessionId, viaCookie: presented.viaCookie };
}

/** Double submit: the `X-CSRF-Token` header and the `mdm_csrf` cookie both hold the session's CSRF token. */
export function csrfMatches(env: Pick<Env, "JWT_SECRET">, req: Request, sessionId: string): boolean {
  const header = req.get(CSRF_HEADER);
  const cookie = parseCookies(req)[CSRF_COOKIE];
  if (!header || !cookie) return false;
  const expected = csrfTokenFor(env, sessionId);
  return constantTimeEquals(header, expected) && constantTimeEquals(cookie, expected);
}

function needsCsrf(req: Request, viaCookie: boolean): boolean {
  return viaCookie && !SAFE_METHODS.has(req.method);
}

/**
 * Lets through signed-in users of at least `minRole`; cookie-authenticated writes must
 * carry the CSRF token. Puts the user in `res.locals.user` and the audit actor in
 * `res.locals.actor`.
 */
export function requireSession(deps: SessionDeps, minRole?: UserRole) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const user = await authenticateSession(deps, req);
    if (!user) throw new HttpError("unauthorized", "Sign in first: the session is missing, expired or revoked");
    if (needsCsrf(req, user.viaCookie) && !csrfMatches(deps.env, req, user.sessionId)) {
      throw new HttpError("forbidden", `Send the session's CSRF token as ${CSRF_HEADER}`);
    }
    if (minRole && !roleAtLeast(user.role, minRole)) throw new HttpError("forbidden", `This needs the ${minRole} role`);
    res.locals.user = user;
    res.locals.actor = { name: user.email, ip: req.ip };
    next();
  };
}

// ---- Cookies -----------------------------------------------------------------------

/** Where the refresh cookie is sent: only to the routes that use it. */
const REFRESH_COOKIE_PATH = "/auth";

function baseCookie(env: Pick<Env, "NODE_ENV">): CookieOptions {
  return { sameSite: "lax", secure: env.NODE_ENV === "production", path: "/" };
}

export type SessionCookies = {
  accessToken: string;
  accessTokenExpiresAt: Date;
  csrfToken: string;
  /** Absent when a refresh was let through without rotating (a concurrent refresh rotated it). */
  refreshToken?: string;
};

export function setSessionCookies(res: Response, env: Pick<Env, "NODE_ENV">, now: Date, cookies: SessionCookies): void {
  const base = baseCookie(env);
  res.cookie(SESSION_COOKIE, cookies.accessToken, { ...base, httpOnly: true, maxAge: cookies.accessTokenExpiresAt.getTime() - now.getTime() });
  // The CSRF cookie lives as long as the refresh cookie: the refresh call needs it too.
  res.cookie(CSRF_COOKIE, cookies.csrfToken, { ...base, httpOnly: false, maxAge: REFRESH_TOKEN_TTL_SECONDS * 1000 });
  if (cookies.refreshToken) {
    res.cookie(REFRESH_COOKIE, cookies.refreshToken, { ...base, httpOnly: true, path: REFRESH_COOKIE_PATH, maxAge: REFRESH_TOKEN_TTL_SECONDS * 1000 });
  }
}

export function clearSessionCookies(res: Response, env: Pick<Env, "NODE_ENV">): void {
  const base = baseCookie(env);
  res.clearCookie(SESSION_COOKIE, { ...base, httpOnly: true });
  res.clearCookie(CSRF_COOKIE, { ...base, httpOnly: false });
  res.clearCookie(REFRESH_COOKIE, { ...base, httpOnly: true, path: REFRESH_COOKIE_PATH });
}

// ---- Dashboard WebSocket -------------------------------------------------------------

function sameOrigin(env: Pick<Env, "WEB_URL">, req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  // Browsers always send Origin on a WebSocket handshake; other clients cannot be tricked into one.
  if (origin === undefined) return true;
  if (origin === new URL(env.WEB_URL).origin) return true;
  const host = req.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

/**
 * Records a ticket's use; false if it was used before. The record is a row (in the table of
 * admin nonces, which housekeeping prunes past their expiry), so a ticket opens one socket
 * across every API instance.
 */
async function consumeTicket(db: AppDeps["db"], ticketId: string, expiresAt: Date): Promise<boolean> {
  try {
    await db.usedNonce.create({ data: { nonce: `ws-ticket:${ticketId}`, expiresAt } });
    return true;
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") return false;
    throw error;
  }
}

/**
 * Authenticates a `/ws/dashboard` upgrade: a single-use ticket from `GET /auth/ws-ticket`
 * offered as the `ticket.<ticket>` subprotocol, valid while the session it was issued to
 * is, else the session cookie from the API's own origin or WEB_URL's (refusing other
 * origins stops a foreign page from riding the cookie). Resolves to the session the socket
 * belongs to, which the hub checks again while the socket is open.
 */
export function dashboardAuthenticator(deps: SessionDeps): DashboardAuthenticator {
  return async (req, protocols) => {
    const offered = protocols.find((protocol) => protocol.startsWith(WS_TICKET_PROTOCOL_PREFIX));
    if (offered) {
      const ticket = verifyWsTicket(deps.env, offered.slice(WS_TICKET_PROTOCOL_PREFIX.length), deps.clock.now());
      if (!ticket || !(await liveSessionUser(deps, ticket.sessionId, ticket.userId))) return undefined;
      if (!(await consumeTicket(deps.db, ticket.ticketId, ticket.expiresAt))) return undefined;
      return { userId: ticket.userId, sessionId: ticket.sessionId };
    }
    if (!sameOrigin(deps.env, req)) return undefined;
    const user = await authenticateSession(deps, req);
    return user ? { userId: user.id, sessionId: user.sessionId } : undefined;
  };
}

/** The sessions among `sessionIds` that are still live: not revoked, not expired, their user not disabled. */
export async function liveSessionIds({ db, clock }: Pick<AppDeps, "db" | "clock">, sessionIds: string[]): Promise<Set<string>> {
  if (sessionIds.length === 0) return new Set();
  const live = await db.session.findMany({
    where: { id: { in: sessionIds }, revokedAt: null, expiresAt: { gt: clock.now() }, user: { disabledAt: null } },
    select: { id: true },
  });
  return new Set(live.map((session) => session.id));
}
