import { hkdfSync, randomBytes } from "node:crypto";
import { BlockList, isIPv4, isIPv6 } from "node:net";
import type { ApiKey as ApiKeyView, CreateApiKeyRequest, CreateApiKeyResponse, ListApiKeysResponse } from "@mdm/contracts";
import type { Env } from "../../config/env";
import type { AppDeps } from "../../deps";
import type { ApiKey } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";

type Actor = { name: string; ip?: string };

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** `mdmk_` + 130 random bits in lower-case base32: public, unguessable, O(1) to look up. */
export function newApiKeyId(): string {
  const bytes = randomBytes(17);
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `mdmk_${out}`;
}

/**
 * A key's signing secret, derived (HKDF-SHA256) from HMAC_SECRET and the key's id, never
 * stored. The server must recompute the HMAC of every request, so a hash of the secret
 * would not do; deriving it leaves nothing in the database to steal, while encrypting it
 * would put ciphertext there protected by the same server secret anyway. Only whoever
 * holds HMAC_SECRET can compute it, and they hold the bootstrap admin key already.
 * Changing HMAC_SECRET therefore voids every API key (README: "API keys").
 */
export function apiKeySecret(env: Pick<Env, "HMAC_SECRET">, keyId: string): string {
  return Buffer.from(hkdfSync("sha256", env.HMAC_SECRET, "mdm api key", keyId, 32)).toString("base64url");
}

/** The audit log's and the command history's name for the key: its name, and its id to tell equal names apart. */
export function apiKeyActor(key: Pick<ApiKey, "id" | "name">): string {
  return `api-key:${key.name} (${key.id})`;
}

/** Whether `ip` (as Express reports it; IPv4-mapped IPv6 counts as IPv4) is in one of `cidrs`; an empty list allows every address. */
export function addressAllowed(cidrs: string[], ip: string | undefined): boolean {
  if (cidrs.length === 0) return true;
  if (!ip) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const address = mapped ? mapped[1]! : ip;
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
  if (!family) return false;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [network, prefix] = cidr.split("/");
    const networkFamily = isIPv4(network!) ? "ipv4" : "ipv6";
    list.addSubnet(network!, Number(prefix), networkFamily);
  }
  return list.check(address, family);
}

function toView(row: ApiKey): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    allowedCidrs: row.allowedCidrs,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    lastUsedIp: row.lastUsedIp,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    actor: apiKeyActor(row),
  };
}

export async function createApiKey(deps: Pick<AppDeps, "db" | "env" | "clock">, input: CreateApiKeyRequest, actor: Actor): Promise<CreateApiKeyResponse> {
  const expiresAt = input.expiresAt ? new Date(input.expiresAt) : null;
  if (expiresAt && expiresAt <= deps.clock.now()) {
    throw new HttpError("validation_failed", "The key would be expired already", [{ path: "expiresAt", message: "Must be in the future" }]);
  }
  const row = await deps.db.$transaction(async (tx) => {
    const created = await tx.apiKey.create({
      data: { id: newApiKeyId(), name: input.name, role: input.role, expiresAt, allowedCidrs: input.allowedCidrs ?? [], createdBy: actor.name },
    });
    await recordAudit(tx, {
      actor: actor.name,
      action: "api_key.create",
      targetType: "api_key",
      targetId: created.id,
      ip: actor.ip,
      details: { name: created.name, role: created.role, expiresAt: input.expiresAt ?? null, allowedCidrs: created.allowedCidrs },
    });
    return created;
  });
  return { ...toView(row), secret: apiKeySecret(deps.env, row.id) };
}

export async function listApiKeys({ db }: Pick<AppDeps, "db">): Promise<ListApiKeysResponse> {
  const rows = await db.apiKey.findMany({ orderBy: [{ createdAt: "desc" }, { id: "asc" }], take: 1000 });
  return { keys: rows.map(toView) };
}

/** Revokes a key; the next request signed with it is refused by every instance (keys are read from the database on each request). */
export async function revokeApiKey({ db, clock }: Pick<AppDeps, "db" | "clock">, keyId: string, actor: Actor): Promise<ApiKeyView> {
  return db.$transaction(async (tx) => {
    const { count } = await tx.apiKey.updateMany({ where: { id: keyId, revokedAt: null }, data: { revokedAt: clock.now(), revokedBy: actor.name } });
    const row = await tx.apiKey.findUnique({ where: { id: keyId } });
    if (!row) throw new HttpError("not_found", "No such API key");
    if (count === 1)
      await recordAudit(tx, { actor: actor.name, action: "api_key.revoke", targetType: "api_key", targetId: keyId, ip: actor.ip, details: { name: row.name } });
    return toView(row);
  });
}
