import type { EnrollmentToken } from "@mdm/contracts";
import { apiUrl } from "@/lib/config";

/** What the enrollment QR code carries: the agent scans it and registers with this server. */
export function enrollmentQrPayload(enrollmentToken: string, server: string = apiUrl): string {
  return JSON.stringify({ server, enrollmentToken });
}

export type EnrollmentTokenStatus = "active" | "expired" | "used up" | "revoked";

/** Whether a device can still enroll with the token, and if not, why: revoked first, then used up, then expired. */
export function enrollmentTokenStatus(token: Pick<EnrollmentToken, "maxUses" | "usedCount" | "expiresAt" | "revokedAt">, now: number = Date.now()): EnrollmentTokenStatus {
  if (token.revokedAt) return "revoked";
  if (token.usedCount >= token.maxUses) return "used up";
  if (Date.parse(token.expiresAt) <= now) return "expired";
  return "active";
}
