import { CSRF_HEADER, REFRESH_COOKIE, SESSION_COOKIE, type SessionResponse, apiRoutes } from "@mdm/contracts";
import { type Request, type Response, Router } from "express";
import type { AppDeps } from "../../deps";
import { parseCookies } from "../../lib/cookies";
import { attemptBackoff } from "../../lib/failure-limits";
import type { Guards } from "../../lib/guards";
import { HttpError } from "../../lib/http-error";
import { limiter } from "../../lib/rate-limits";
import { mount } from "../../lib/routing";
import { parseToken } from "../../lib/secrets";
import { inputOf } from "../../lib/validate";
import { type ClientInfo, type IssuedSession, currentUser, issueWsTicket, login, logout, refreshSession, setupFirstAdmin, setupStatus } from "./auth.service";
import { checkPasswordReset, confirmPasswordReset, requestPasswordReset } from "./password-reset.service";
import { addressKey, isDirectFromThisHost } from "../../lib/client-ip";
import { passwordMatches } from "./passwords";
import { type SessionUser, clearSessionCookies, csrfMatches, setSessionCookies } from "./session";
import { verifyAccessToken } from "./tokens";

function clientOf(req: Request): ClientInfo {
  return {
    ip: req.ip,
    userAgent: req.get("user-agent"),
    directFromThisHost: isDirectFromThisHost(req),
  };
}

/** Sets the session's cookies and answers its SessionResponse. */
function sendSession(deps: AppDeps, res: Response, status: number, issued: IssuedSession): void {
  setSessionCookies(res, deps.env, deps.clock.now(), issued);
  const body: SessionResponse = { user: issued.user, csrfToken: issued.csrfToken, accessTokenExpiresAt: issued.accessTokenExpiresAt.toISOString() };
  res.status(status).json(body);
}

/**
 * The session a logout names: the refresh cookie's, else the access token's (even an
 * expired one: signing out must work after a coffee break).
 */
function sessionToEnd(deps: AppDeps, req: Request): { sessionId: string; viaCookie: boolean } | undefined {
  const refresh = parseToken(parseCookies(req)[REFRESH_COOKIE] ?? "");
  if (refresh) return { sessionId: refresh.id, viaCookie: true };
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "")?.[1];
  const token = bearer ?? parseCookies(req)[SESSION_COOKIE];
  const claims = token ? verifyAccessToken(deps.env, deps.clock.now(), token, { ignoreExpiration: true }) : undefined;
  return claims ? { sessionId: claims.sessionId, viaCookie: bearer === undefined } : undefined;
}

export function authRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const { env } = deps;
  // So the first failed login for an unknown email is not slower than the next ones.
  void passwordMatches("", undefined, env.BCRYPT_COST);

  // Counted after validation, per client address and email: guessing one account's
  // password is throttled without locking its owner out from another address.
  const loginLimiter = limiter({
    name: "login",
    redis: deps.redis,
    perMinute: env.RATE_LIMIT_LOGIN_PER_MINUTE,
    keyGenerator: (req, res) => `login:${addressKey(req.ip)}:${inputOf(apiRoutes.login, res).body.email}`,
  });
  // Backoff per account rather than lock-out: after RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT
  // failures in 15 minutes from one address, that address waits 30 s per attempt at this
  // account, doubling up to 5 minutes; after ten times as many from all addresses together,
  // every address that has failed at this account does. So one attacker slows only
  // themselves, guessing spread over many addresses is capped at one try per fresh
  // address, and the owner, from an address that has not failed, always gets through:
  // nobody can lock them out. Unknown emails are counted alike, so a 429 tells nothing.
  // IPv6 addresses count by their /56 (addressKey), so one host cannot be many addresses.
  const backoff = (name: string, freeFailures: number) =>
    attemptBackoff({
      name,
      redis: deps.redis,
      freeFailures,
      windowMs: 15 * 60_000,
      baseDelayMs: 30_000,
      maxDelayMs: 5 * 60_000,
      now: () => deps.clock.now().getTime(),
    });
  const fromThisAddress = backoff("login-account-address", env.RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT);
  const fromAnyAddress = backoff("login-account", env.RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT * 10);
  // Counted after validation: only requests that may send a mail count. Per client
  // address; per account, the mail worker sends at most one mail an interval
  // (PASSWORD_RESET_MAIL_INTERVAL_SECONDS) instead of refusing, so asking cannot deny.
  const resetLimiter = limiter({ name: "password-reset", redis: deps.redis, windowMs: 3600_000, limit: env.RATE_LIMIT_PASSWORD_RESET_PER_HOUR });

  // Checking a link guesses nothing a 32-byte secret would give away, but is throttled per
  // address as sign-in is, so it is no cheaper to hammer than the confirmation.
  const resetCheckLimiter = limiter({ name: "password-reset-check", redis: deps.redis, perMinute: env.RATE_LIMIT_LOGIN_PER_MINUTE });

  const signIn = async (req: Request, res: Response) => {
    const input = inputOf(apiRoutes.login, res).body;
    const keys = [`${input.email}|${addressKey(req.ip)}`, input.email] as const;
    const failedHereBefore = (await fromThisAddress.failures(keys[0])) > 0;
    const waitMs = Math.max(await fromThisAddress.begin(keys[0]), failedHereBefore ? await fromAnyAddress.begin(keys[1]) : 0);
    if (waitMs > 0) {
      throw new HttpError("rate_limited", "Too many failed sign-ins for this account; retry later", undefined, {
        "Retry-After": String(Math.ceil(waitMs / 1000)),
      });
    }
    try {
      const issued = await login(deps, input, clientOf(req));
      await Promise.all([fromThisAddress.succeeded(keys[0]), fromAnyAddress.succeeded(keys[1])]);
      sendSession(deps, res, 200, issued);
    } catch (error) {
      if (error instanceof HttpError && error.status === 401) await Promise.all([fromThisAddress.failed(keys[0]), fromAnyAddress.failed(keys[1])]);
      throw error;
    }
  };

  mount(router, apiRoutes.getSetupStatus, async (req, res) => res.json(await setupStatus(deps, clientOf(req))), { guards: guards.public });

  mount(
    router,
    apiRoutes.setup,
    async (req, res) => sendSession(deps, res, 201, await setupFirstAdmin(deps, inputOf(apiRoutes.setup, res).body, clientOf(req))),
    { guards: guards.public },
  );

  mount(router, apiRoutes.login, signIn, {
    guards: guards.public,
    afterValidation: [loginLimiter],
  });

  mount(
    router,
    apiRoutes.refreshSession,
    async (req, res) => {
      const token = parseCookies(req)[REFRESH_COOKIE];
      const parsed = token ? parseToken(token) : undefined;
      if (!token || !parsed) throw new HttpError("unauthorized", "No refresh cookie; sign in again");
      if (!csrfMatches(env, req, parsed.id)) throw new HttpError("forbidden", `Send the session's CSRF token as ${CSRF_HEADER}`);
      try {
        sendSession(deps, res, 200, await refreshSession(deps, token, clientOf(req)));
      } catch (error) {
        if (error instanceof HttpError && error.status === 401) clearSessionCookies(res, env);
        throw error;
      }
    },
    { guards: guards.public },
  );

  mount(
    router,
    apiRoutes.logout,
    async (req, res) => {
      const ending = sessionToEnd(deps, req);
      if (ending) {
        if (ending.viaCookie && !csrfMatches(env, req, ending.sessionId)) throw new HttpError("forbidden", `Send the session's CSRF token as ${CSRF_HEADER}`);
        await logout(deps, ending.sessionId, clientOf(req));
      }
      clearSessionCookies(res, env);
      res.status(204).end();
    },
    { guards },
  );

  mount(router, apiRoutes.me, async (_req, res) => res.json(await currentUser(deps, (res.locals.user as SessionUser).id)), { guards: guards.session() });

  mount(router, apiRoutes.wsTicket, async (_req, res) => res.json(issueWsTicket(deps, res.locals.user as SessionUser)), { guards: guards.session() });

  mount(
    router,
    apiRoutes.requestPasswordReset,
    async (req, res) => res.status(202).json(await requestPasswordReset(deps, inputOf(apiRoutes.requestPasswordReset, res).body.email, clientOf(req))),
    { guards: guards.public, afterValidation: [resetLimiter] },
  );

  mount(
    router,
    apiRoutes.checkPasswordReset,
    async (_req, res) => res.json(await checkPasswordReset(deps, inputOf(apiRoutes.checkPasswordReset, res).body.token)),
    {
      guards: guards.public,
      afterValidation: [resetCheckLimiter],
    },
  );

  mount(
    router,
    apiRoutes.confirmPasswordReset,
    async (req, res) => {
      await confirmPasswordReset(deps, inputOf(apiRoutes.confirmPasswordReset, res).body, clientOf(req));
      res.status(204).end();
    },
    { guards: guards.public },
  );

  return router;
}
