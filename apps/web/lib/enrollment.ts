import type { EnrollmentToken } from "@mdm/contracts";
import { apiUrl } from "@/lib/config";

export type ServerReach = "loopback" | "private" | "public";

/**
 * Whether phones can reach a server URL: a loopback address (127.x, ::1, localhost) is only
 * this machine; a private one (10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10,
 * *.local) only its network.
 */
export function serverReach(url: string): ServerReach {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, "");
  } catch {
    return "loopback";
  }
  if (host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\./.test(host) || host === "0.0.0.0") return "loopback";
  const octets = host.split(".").map(Number);
  if (octets.length === 4 && octets.every((octet) => Number.isInteger(octet) && octet >= 0 && octet <= 255)) {
    const [a, b] = octets as [number, number, number, number];
    if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127))
      return "private";
    return "public";
  }
  if (/^f[cd][0-9a-f]{2}:/.test(host) || /^fe[89ab][0-9a-f]:/.test(host)) return "private";
  if (host.endsWith(".local") || host.endsWith(".internal") || host.endsWith(".lan") || !host.includes(".")) return "private";
  return "public";
}

/** What the enrollment QR code carries: the agent scans it and registers with this server. */
export function enrollmentQrPayload(enrollmentToken: string, server: string = apiUrl): string {
  return JSON.stringify({ server, enrollmentToken });
}

export type EnrollmentTokenStatus = "active" | "expired" | "used up" | "revoked";

/** Whether a device can still enroll with the token, and if not, why: revoked first, then used up, then expired. */
export function enrollmentTokenStatus(
  token: Pick<EnrollmentToken, "maxUses" | "usedCount" | "expiresAt" | "revokedAt">,
  now: number = Date.now(),
): EnrollmentTokenStatus {
  if (token.revokedAt) return "revoked";
  if (token.usedCount >= token.maxUses) return "used up";
  if (Date.parse(token.expiresAt) <= now) return "expired";
  return "active";
}
