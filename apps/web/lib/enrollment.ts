import { apiUrl } from "@/lib/config";

/** What the enrollment QR code carries: the agent scans it and registers with this server. */
export function enrollmentQrPayload(enrollmentToken: string, server: string = apiUrl): string {
  return JSON.stringify({ server, enrollmentToken });
}
