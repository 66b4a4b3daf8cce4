import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { Env } from "../../config/env";
import { HttpError } from "../../lib/http-error";

export const APP_FILE_PATH = "/v1/app-files";

// Its own key, derived from the command master key: whoever can sign download URLs can
// only read catalogue files, and nothing that signs anything else shares it.
function urlKey(env: Pick<Env, "COMMAND_MASTER_KEY">): Buffer {
  return Buffer.from(hkdfSync("sha256", env.COMMAND_MASTER_KEY, "mdm apk download", "v1", 32));
}

// Over `expires` exactly as written in the URL: a rewritten form of the same number
// (a leading zero) is an altered URL.
function signatureOf(env: Pick<Env, "COMMAND_MASTER_KEY">, sha256: string, expires: string): string {
  return createHmac("sha256", urlKey(env)).update(`GET\n${APP_FILE_PATH}/${sha256}\n${expires}`).digest("hex");
}

/** The path and query of a signed download of `sha256`, valid until `expiresAt`. */
export function signedAppFilePath(env: Pick<Env, "COMMAND_MASTER_KEY">, sha256: string, expiresAt: Date): string {
  const expires = String(Math.floor(expiresAt.getTime() / 1000));
  return `${APP_FILE_PATH}/${sha256}?expires=${expires}&signature=${signatureOf(env, sha256, expires)}`;
}

/** Refuses (403) a download URL that was altered or has expired. */
export function verifyAppFileUrl(env: Pick<Env, "COMMAND_MASTER_KEY">, sha256: string, expires: string, signature: string, now: Date): void {
  const expected = Buffer.from(signatureOf(env, sha256, expires), "hex");
  const given = Buffer.from(signature, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new HttpError("forbidden", "The download URL's signature does not match");
  if (Number(expires) * 1000 <= now.getTime()) throw new HttpError("forbidden", "The download URL has expired");
}
