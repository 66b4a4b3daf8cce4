import { z } from "zod";
import { DateTime, Uuid, text } from "./primitives";

export const CreateEnrollmentTokenRequest = z.strictObject({
  label: text(200).optional(),
  maxUses: z.int().min(1).max(1_000_000).default(1),
  expiresInSeconds: z
    .int()
    .min(60)
    .max(365 * 24 * 3600)
    .default(7 * 24 * 3600),
});
export type CreateEnrollmentTokenRequest = z.infer<typeof CreateEnrollmentTokenRequest>;

export const EnrollmentToken = z.object({
  id: Uuid,
  label: z.string().nullable(),
  maxUses: z.int(),
  usedCount: z.int(),
  expiresAt: DateTime,
  revokedAt: DateTime.nullable(),
  createdAt: DateTime,
  createdBy: z.string().nullable(),
});
export type EnrollmentToken = z.infer<typeof EnrollmentToken>;

const PublicApiUrl = z
  .string()
  .nullable()
  .describe("The server URL devices are told to use (the API's `PUBLIC_API_URL`); null when unset, and the dashboard uses its own API URL.");

export const CreateEnrollmentTokenResponse = EnrollmentToken.extend({
  token: z.string().describe("The secret a device presents to `POST /v1/register`. Shown only this once."),
  publicApiUrl: PublicApiUrl,
});
export type CreateEnrollmentTokenResponse = z.infer<typeof CreateEnrollmentTokenResponse>;

export const ListEnrollmentTokensResponse = z.object({
  tokens: z.array(EnrollmentToken).describe("Newest first; the secrets are never shown again."),
  publicApiUrl: PublicApiUrl,
});
export type ListEnrollmentTokensResponse = z.infer<typeof ListEnrollmentTokensResponse>;

export const EnrollmentTokenIdParams = z.object({ tokenId: Uuid });
export type EnrollmentTokenIdParams = z.infer<typeof EnrollmentTokenIdParams>;
