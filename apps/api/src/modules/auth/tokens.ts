import { type KeyObject, createHmac, createSecretKey, randomUUID } from "node:crypto";
import type { UserRole } from "@mdm/contracts";
import jwt from "jsonwebtoken";
import type { Env } from "../../config/env";

// Access tokens and WebSocket tickets are HS256 JWTs under JWT_SECRET. Each kind has its
// own audience, so a ticket is never accepted as an access token or the other way round.

export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
export const REFRESH_TOKEN_TTL_SECONDS = 7 * 24 * 3600;
export const WS_TICKET_TTL_SECONDS = 60;

const ACCESS_AUDIENCE = "access";
const WS_AUDIENCE = "ws";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ROLES: readonly UserRole[] = ["viewer", "operator", "admin"];

/** Whether `role` may do what `minRole` may (viewer < operator < admin). */
export function roleAtLeast(role: UserRole, minRole: UserRole): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(minRole);
}

const unixSeconds = (at: Date) => Math.floor(at.getTime() / 1000);

/**
 * JWT_SECRET as a key object. Given the string, jsonwebtoken first tries to parse it as a PEM
 * key, which throws, at every sign and verify: 600-740 us each against 13-24 us with the key
 * object, on every request a signed-in user makes. One secret per process: the last one is kept.
 */
let secretKey: { secret: string; key: KeyObject } | undefined;
function jwtKey(env: Pick<Env, "JWT_SECRET">): KeyObject {
  if (secretKey?.secret !== env.JWT_SECRET) secretKey = { secret: env.JWT_SECRET, key: createSecretKey(Buffer.from(env.JWT_SECRET)) };
  return secretKey.key;
}

function sign(env: Pick<Env, "JWT_SECRET">, now: Date, subject: string, audience: string, ttlSeconds: number, claims: object) {
  const iat = unixSeconds(now);
  const token = jwt.sign({ ...claims, iat }, jwtKey(env), { algorithm: "HS256", subject, audience, expiresIn: ttlSeconds });
  return { token, expiresAt: new Date((iat + ttlSeconds) * 1000) };
}

function verify(env: Pick<Env, "JWT_SECRET">, now: Date, token: string, audience: string, options: { ignoreExpiration?: boolean } = {}) {
  try {
    const payload = jwt.verify(token, jwtKey(env), {
      algorithms: ["HS256"],
      audience,
      clockTimestamp: unixSeconds(now),
      ignoreExpiration: options.ignoreExpiration ?? false,
    });
    if (typeof payload !== "object" || typeof payload.sub !== "string" || !UUID.test(payload.sub)) return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

export function signAccessToken(env: Pick<Env, "JWT_SECRET">, now: Date, claims: { userId: string; role: UserRole; sessionId: string }) {
  return sign(env, now, claims.userId, ACCESS_AUDIENCE, ACCESS_TOKEN_TTL_SECONDS, { role: claims.role, sid: claims.sessionId });
}

/** The user and session an access token names, if its signature holds (and it has not expired, unless told to ignore that). */
export function verifyAccessToken(env: Pick<Env, "JWT_SECRET">, now: Date, token: string, options: { ignoreExpiration?: boolean } = {}) {
  const payload = verify(env, now, token, ACCESS_AUDIENCE, options);
  if (!payload || typeof payload.sid !== "string" || !UUID.test(payload.sid)) return undefined;
  return { userId: payload.sub!, sessionId: payload.sid };
}

/** A single-use ticket for one dashboard socket of this session (its `jti` is recorded when used). */
export function signWsTicket(env: Pick<Env, "JWT_SECRET">, now: Date, claims: { userId: string; role: UserRole; sessionId: string }) {
  return sign(env, now, claims.userId, WS_AUDIENCE, WS_TICKET_TTL_SECONDS, { role: claims.role, sid: claims.sessionId, jti: randomUUID() });
}

export type WsTicket = { userId: string; role: UserRole; sessionId: string; ticketId: string; expiresAt: Date };

/** A dashboard WebSocket ticket's claims, if the ticket is genuine and less than 60 seconds old (use is checked apart). */
export function verifyWsTicket(env: Pick<Env, "JWT_SECRET">, ticket: string, now: Date = new Date()): WsTicket | undefined {
  const payload = verify(env, now, ticket, WS_AUDIENCE);
  if (!payload || !ROLES.includes(payload.role)) return undefined;
  if (typeof payload.sid !== "string" || !UUID.test(payload.sid) || typeof payload.jti !== "string" || !UUID.test(payload.jti)) return undefined;
  return { userId: payload.sub!, role: payload.role as UserRole, sessionId: payload.sid, ticketId: payload.jti, expiresAt: new Date(payload.exp! * 1000) };
}

/**
 * The session's CSRF token: derived from its id, so it needs no storage and a token
 * planted in the cookie by someone else (e.g. from a sibling subdomain) does not match.
 */
export function csrfTokenFor(env: Pick<Env, "JWT_SECRET">, sessionId: string): string {
  return createHmac("sha256", env.JWT_SECRET).update(`csrf:${sessionId}`).digest("base64url");
}
