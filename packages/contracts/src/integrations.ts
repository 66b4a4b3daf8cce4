import { z } from "zod";
import { UserRole } from "./auth";
import { DateTime, nonEmptyText } from "./primitives";

// ---- API keys ---------------------------------------------------------------------------

/** An API key's id: public, sent as `X-Admin`; `mdmk_` and 26 characters of base32. */
export const API_KEY_ID_PATTERN = /^mdmk_[a-z2-7]{26}$/;
export const ApiKeyId = z.string().regex(API_KEY_ID_PATTERN, "Must be an API key id (mdmk_…)");

export const ApiKeyIdParams = z.strictObject({ keyId: ApiKeyId });
export type ApiKeyIdParams = z.infer<typeof ApiKeyIdParams>;

/** An allowed address range: IPv4 or IPv6 CIDR (`10.0.0.0/8`, `2001:db8::/32`). */
export const Cidr = z.union([z.cidrv4(), z.cidrv6()], { error: "Must be an IPv4 or IPv6 CIDR range, e.g. 10.0.0.0/8 or 2001:db8::/32" });

export const CreateApiKeyRequest = z.strictObject({
  name: nonEmptyText(64).describe("What the key is for, e.g. `ticketing-sync`; names it in the audit log and command history."),
  role: UserRole.describe("What the key may do, as for users: `viewer` reads, `operator` also acts on the fleet, `admin` everything."),
  expiresAt: DateTime.optional().describe("After this instant the key is refused. Unset: never expires."),
  allowedCidrs: z.array(Cidr).max(32).default([]).describe("Client addresses the key may be used from; empty: any."),
});
export type CreateApiKeyRequest = z.input<typeof CreateApiKeyRequest>;

export const ApiKey = z.object({
  id: z.string().describe("Sent as `X-Admin`; not a secret."),
  name: z.string(),
  role: UserRole,
  allowedCidrs: z.array(z.string()),
  expiresAt: DateTime.nullable(),
  lastUsedAt: DateTime.nullable().describe("Last authenticated request, to the minute."),
  lastUsedIp: z.string().nullable(),
  createdAt: DateTime,
  createdBy: z.string(),
  revokedAt: DateTime.nullable(),
  /** The audit log's and command history's name for the key. */
  actor: z.string(),
});
export type ApiKey = z.infer<typeof ApiKey>;

export const CreateApiKeyResponse = ApiKey.extend({
  secret: z.string().describe("The key's signing secret (HMAC key of its requests). Shown only this once."),
});
export type CreateApiKeyResponse = z.infer<typeof CreateApiKeyResponse>;

export const ListApiKeysResponse = z.object({ keys: z.array(ApiKey) });
export type ListApiKeysResponse = z.infer<typeof ListApiKeysResponse>;
