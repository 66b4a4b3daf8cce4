import { createHash } from "node:crypto";
import { ADMIN_SIGNATURE_WINDOW_SECONDS, API_KEY_ID_PATTERN, type UserRole, adminSignature, timingSafeEqual } from "@mdm/contracts";
import type { NextFunction, Request, Response } from "express";
import type { AppDeps } from "../../deps";
import { type ApiKey, Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";
import { constantTimeEquals } from "../../lib/secrets";
import { addressAllowed, apiKeyActor, apiKeySecret } from "../api-keys/api-keys.service";
import { roleAtLeast } from "../auth/tokens";

const NONCE = /^[A-Za-z0-9_-]{8,128}$/;
const TIMESTAMP = /^\d{1,12}$/;
const SIGNATURE = /^[a-fA-F0-9]{64}$/;

/**
 * The audit log's name for a caller holding the admin key: a fingerprint of the key, so
 * entries tell which key signed (before and after a rotation) without revealing it.
 */
export function adminKeyId(adminKey: string): string {
  return `admin-key:${createHash("sha256").update(`mdm-admin-key-id:${adminKey}`).digest("hex").slice(0, 12)}`;
}

/** How far apart the clocks of two instances may be without reopening a replay window. */
const NONCE_CLOCK_SKEW_SECONDS = 60;

type Signer = { secret: string; actor: string; apiKey?: ApiKey };

/**
 * `/admin/*` authentication: a key id in `X-Admin` plus an HMAC signature over timestamp,
 * nonce, method, Host, path and body hash (README: "Signing admin requests"). The key is
 * the bootstrap `ADMIN_KEY` (signed with HMAC_SECRET, full rights) or an API key (signed
 * with its own secret, acting with its role, from its allowed ranges, until it expires or
 * is revoked). API keys are read from the database on every request, so a revocation holds
 * at once on every instance. Each nonce is recorded in the database, so a replay is refused
 * by every API instance. Returns the middleware for routes needing `minRole`.
 */
export function adminAuth({ db, env, clock }: Pick<AppDeps, "db" | "env" | "clock">) {
  const bootstrapActor = adminKeyId(env.ADMIN_KEY);

  async function signerOf(key: string): Promise<Signer> {
    if (constantTimeEquals(key, env.ADMIN_KEY)) return { secret: env.HMAC_SECRET, actor: bootstrapActor };
    if (!API_KEY_ID_PATTERN.test(key)) throw new HttpError("unauthorized", "Missing or wrong X-Admin key");
    const apiKey = await db.apiKey.findUnique({ where: { id: key } });
    if (!apiKey) throw new HttpError("unauthorized", "Missing or wrong X-Admin key");
    return { secret: apiKeySecret(env, apiKey.id), actor: apiKeyActor(apiKey), apiKey };
  }

  return (minRole: UserRole) => async (req: Request, res: Response, next: NextFunction) => {
    const key = req.get("x-admin");
    if (!key) throw new HttpError("unauthorized", "Missing or wrong X-Admin key");
    const signer = await signerOf(key);

    const timestamp = req.get("x-timestamp") ?? "";
    const now = clock.now();
    const nowSeconds = Math.floor(now.getTime() / 1000);
    if (!TIMESTAMP.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > ADMIN_SIGNATURE_WINDOW_SECONDS) {
      throw new HttpError("unauthorized", `X-Timestamp must be unix seconds within ${ADMIN_SIGNATURE_WINDOW_SECONDS} s of the server's clock`);
    }
    const nonce = req.get("x-nonce") ?? "";
    if (!NONCE.test(nonce)) throw new HttpError("unauthorized", "X-Nonce must be 8-128 characters of [A-Za-z0-9_-]");
    const signature = req.get("x-signature") ?? "";
    if (!SIGNATURE.test(signature)) throw new HttpError("unauthorized", "X-Signature must be a hex HMAC-SHA256");

    const expected = await adminSignature(signer.secret, {
      timestamp,
      nonce,
      method: req.method,
      host: req.get("host") ?? "",
      pathWithQuery: req.originalUrl,
      body: Buffer.isBuffer(req.body) ? req.body : "",
    });
    if (!timingSafeEqual(expected, signature.toLowerCase())) throw new HttpError("unauthorized", "The request signature does not match");

    // Told apart only once the caller proved it holds the key's secret.
    const { apiKey } = signer;
    if (apiKey?.revokedAt) throw new HttpError("unauthorized", "This API key was revoked");
    if (apiKey?.expiresAt && apiKey.expiresAt <= now) throw new HttpError("unauthorized", "This API key has expired");
    if (apiKey && !addressAllowed(apiKey.allowedCidrs, req.ip)) throw new HttpError("forbidden", "This API key may not be used from this address");

    try {
      // Kept until the timestamp has left the window on every instance: one window after
      // it, plus the second the window check rounds away, plus NONCE_CLOCK_SKEW_SECONDS for
      // an instance whose clock runs behind the one that prunes.
      const expiresAt = new Date((Number(timestamp) + ADMIN_SIGNATURE_WINDOW_SECONDS + 1 + NONCE_CLOCK_SKEW_SECONDS) * 1000);
      await db.usedNonce.create({ data: { nonce, expiresAt } });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") {
        throw new HttpError("unauthorized", "This nonce was already used");
      }
      throw error;
    }
    if (apiKey) {
      if (!roleAtLeast(apiKey.role, minRole)) throw new HttpError("forbidden", `This needs the ${minRole} role; the API key is ${apiKey.role}`);
      // At most one write a minute per key: last use is shown to the minute.
      await db.apiKey.updateMany({
        where: { id: apiKey.id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: new Date(now.getTime() - 60_000) } }] },
        data: { lastUsedAt: now, lastUsedIp: req.ip ?? null },
      });
    }
    res.locals.actor = { name: signer.actor, ip: req.ip };
    next();
  };
}
