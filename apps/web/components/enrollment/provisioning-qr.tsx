"use client";

import type { CreateEnrollmentTokenResponse, ProvisioningResponse } from "@mdm/contracts";
import { useState } from "react";
import { CopyButton } from "@/components/copy-button";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { errorMessage } from "@/lib/api";
import { provisioningPayload } from "@/lib/swr/use-device-policies";
import { EnrollmentQrCode } from "./enrollment-qr-code";

/**
 * The Android Enterprise device-owner QR code of a token just created: a factory-reset
 * device's setup wizard reads it, downloads the agent, makes it device owner and hands it
 * the server URL and this token. Built by the API from its agent settings.
 */
export function ProvisioningQr({ token, server }: { token: CreateEnrollmentTokenResponse; server: string }) {
  const [ssid, setSsid] = useState("");
  const [password, setPassword] = useState("");
  const [result, setResult] = useState<ProvisioningResponse>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const build = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const wifi = ssid.trim()
        ? { ssid: ssid.trim(), securityType: password ? ("WPA" as const) : ("NONE" as const), password: password || undefined, hidden: false }
        : undefined;
      setResult(
        await provisioningPayload(token.id, {
          enrollmentToken: token.token,
          wifi,
          leaveAllSystemAppsEnabled: true,
          serverUrl: token.publicApiUrl ? undefined : server,
        }),
      );
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="flex flex-col gap-3 border-t pt-4" data-testid="provisioning-qr-section">
      <div>
        <h3 className="font-medium">Device-owner provisioning QR code (factory-reset devices)</h3>
        <p className="text-sm text-muted-foreground">
          For a new or factory-reset device: tap the setup wizard&apos;s welcome screen six times, scan this code, and the device downloads the agent, makes it
          device owner and enrolls itself. The QR code above is for an agent you installed by hand.
        </p>
      </div>
      <form onSubmit={build} className="flex flex-wrap items-end gap-2">
        <div className="flex flex-col gap-1">
          <Label htmlFor="provisioning-ssid">Wi-Fi network (optional)</Label>
          <Input id="provisioning-ssid" value={ssid} onChange={(event) => setSsid(event.target.value)} maxLength={32} className="w-48" />
        </div>
        <div className="flex flex-col gap-1">
          <Label htmlFor="provisioning-password">Wi-Fi password</Label>
          <Input
            id="provisioning-password"
            type="password"
            value={password}
            onChange={(event) => setPassword(event.target.value)}
            maxLength={63}
            className="w-48"
          />
        </div>
        <Button type="submit" variant="outline" disabled={busy}>
          {busy ? "Building…" : "Show the provisioning QR code"}
        </Button>
      </form>
      {error ? (
        <p role="alert" className="text-sm text-destructive" data-testid="provisioning-error">
          {error}
        </p>
      ) : null}
      {result ? (
        <div className="flex flex-col gap-4 md:flex-row md:items-start" data-testid="provisioning-result">
          <EnrollmentQrCode value={result.qrText} alt="Device-owner provisioning QR code" testId="provisioning-qr" />
          <div className="flex min-w-0 flex-1 flex-col gap-2">
            <Label htmlFor="provisioning-payload">Device-owner payload</Label>
            <div className="flex gap-2">
              <Input id="provisioning-payload" readOnly value={result.qrText} className="font-mono text-xs" onFocus={(event) => event.target.select()} />
              <CopyButton value={result.qrText} />
            </div>
          </div>
        </div>
      ) : null}
    </div>
  );
}
