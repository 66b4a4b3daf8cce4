import { PROVISIONING_ADMIN_EXTRAS, PROVISIONING_EXTRA, type ProvisioningPayload, type ProvisioningRequest, type ProvisioningResponse } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { HttpError } from "../../lib/http-error";
import { parseToken, secretMatches } from "../../lib/secrets";

/**
 * The Android Enterprise device-owner provisioning payload for an enrollment token: what a
 * factory-reset device's setup wizard reads from a QR code to download our agent, check its
 * signing certificate, make it device owner, and hand it the server URL and the token.
 */
export async function provisioningPayload(
  { db, clock, env }: Pick<AppDeps, "db" | "clock" | "env">,
  tokenId: string,
  input: ProvisioningRequest,
): Promise<ProvisioningResponse> {
  const row = await db.enrollmentToken.findUnique({ where: { id: tokenId } });
  if (!row) throw new HttpError("not_found", "No enrollment token has this id");
  const parsed = parseToken(input.enrollmentToken);
  if (!parsed || parsed.id !== tokenId || !secretMatches(parsed.secret, row.secretHash)) {
    throw new HttpError("validation_failed", "The enrollment token is not this token's secret", [
      { path: "enrollmentToken", message: "Must be the token returned when this token was created" },
    ]);
  }
  if (row.revokedAt || row.expiresAt <= clock.now() || row.usedCount >= row.maxUses)
    throw new HttpError("conflict", "The enrollment token is revoked, expired or used up");

  const serverUrl = input.serverUrl?.replace(/\/+$/, "") ?? env.PUBLIC_API_URL;
  const missing: string[] = (["AGENT_COMPONENT_NAME", "AGENT_APK_URL", "AGENT_SIGNATURE_CHECKSUM"] as const).filter((name) => !env[name]);
  if (!serverUrl) missing.push("PUBLIC_API_URL (or send serverUrl)");
  if (missing.length > 0) throw new HttpError("conflict", `Device-owner provisioning is not configured on the server: set ${missing.join(", ")}`);

  const payload: ProvisioningPayload = {
    [PROVISIONING_EXTRA.componentName]: env.AGENT_COMPONENT_NAME!,
    [PROVISIONING_EXTRA.packageDownloadLocation]: env.AGENT_APK_URL!,
    [PROVISIONING_EXTRA.signatureChecksum]: env.AGENT_SIGNATURE_CHECKSUM!,
    ...(input.wifi && {
      [PROVISIONING_EXTRA.wifiSsid]: input.wifi.ssid,
      [PROVISIONING_EXTRA.wifiSecurityType]: input.wifi.securityType,
      ...(input.wifi.password !== undefined && { [PROVISIONING_EXTRA.wifiPassword]: input.wifi.password }),
      [PROVISIONING_EXTRA.wifiHidden]: input.wifi.hidden,
    }),
    [PROVISIONING_EXTRA.leaveAllSystemAppsEnabled]: input.leaveAllSystemAppsEnabled,
    [PROVISIONING_EXTRA.adminExtrasBundle]: {
      [PROVISIONING_ADMIN_EXTRAS.serverUrl]: serverUrl!,
      [PROVISIONING_ADMIN_EXTRAS.enrollmentToken]: input.enrollmentToken,
    },
  };
  return { payload, qrText: JSON.stringify(payload) };
}
