import { createHash } from "node:crypto";
import { ADMIN_SIGNATURE_WINDOW_SECONDS, adminSignature, timingSafeEqual } from "@mdm/contracts";
import type { NextFunction, Request, Response } from "express";
import type { AppDeps } from "../../deps";
import { Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";
import { constantTimeEquals } from "../../lib/secrets";

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

/**
 * `/admin/*` authentication: the admin key plus an HMAC signature over timestamp, nonce,
 * method, Host, path and body hash (README: "Signing admin requests"). Each nonce is recorded in
 * the database, so a replay is refused by every API instance.
 */
export function adminAuth({ db, env, clock }: Pick<AppDeps, "db" | "env" | "clock">) {
  const actor = adminKeyId(env.ADMIN_KEY);
  return async (req: Request, res: Response, next: NextFunction) => {
    const key = req.get("x-admin");
    if (!key || !constantTimeEquals(key, env.ADMIN_KEY)) throw new HttpError("unauthorized", "Missing or wrong X-Admin key");

    const timestamp = req.get("x-timestamp") ?? "";
    const nowSeconds = Math.floor(clock.now().getTime() / 1000);
    if (!TIMESTAMP.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > ADMIN_SIGNATURE_WINDOW_SECONDS) {
      throw new HttpError("unauthorized", `X-Timestamp must be unix seconds within ${ADMIN_SIGNATURE_WINDOW_SECONDS} s of the server's clock`);
    }
    const nonce = req.get("x-nonce") ?? "";
    if (!NONCE.test(nonce)) throw new HttpError("unauthorized", "X-Nonce must be 8-128 characters of [A-Za-z0-9_-]");
    const signature = req.get("x-signature") ?? "";
    if (!SIGNATURE.test(signature)) throw new HttpError("unauthorized", "X-Signature must be a hex HMAC-SHA256");

    const expected = await adminSignature(env.HMAC_SECRET, {
      timestamp,
      nonce,
      method: req.method,
      host: req.get("host") ?? "",
      pathWithQuery: req.originalUrl,
      body: Buffer.isBuffer(req.body) ? req.body : "",
    });
    if (!timingSafeEqual(expected, signature.toLowerCase())) throw new HttpError("unauthorized", "The request signature does not match");

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
    res.locals.actor = { name: actor, ip: req.ip };
    next();
  };
}
