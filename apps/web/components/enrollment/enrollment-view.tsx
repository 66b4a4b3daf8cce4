"use client";

import { type CreateEnrollmentTokenResponse, CreateEnrollmentTokenRequest } from "@mdm/contracts";
import { useState } from "react";
import { CopyButton } from "@/components/copy-button";
import { usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { WarningNotice } from "@/components/warning-notice";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { errorMessage } from "@/lib/api";
import { apiUrl } from "@/lib/config";
import { fieldErrors } from "@/lib/validation";
import { enrollmentQrPayload, serverReach } from "@/lib/enrollment";
import { formatDateTime } from "@/lib/format";
import { createEnrollmentToken, useEnrollmentTokens } from "@/lib/swr/use-enrollment-tokens";
import { EnrollmentQrCode } from "./enrollment-qr-code";
import { EnrollmentTokensTable } from "./enrollment-tokens-table";
import { ProvisioningQr } from "./provisioning-qr";

const EXPIRY_CHOICES = [
  { label: "1 hour", seconds: 3_600 },
  { label: "1 day", seconds: 86_400 },
  { label: "7 days", seconds: 604_800 },
  { label: "30 days", seconds: 2_592_000 },
] as const;

/**
 * The server URL phones are given, and a warning when they cannot reach it: the API's
 * PUBLIC_API_URL when set, else the dashboard's own API URL (often loopback in development).
 */
function ServerUrlNotice({ server, configured }: { server: string; configured: boolean }) {
  const reach = serverReach(server);
  if (reach === "public") {
    return (
      <p className="text-sm text-muted-foreground" data-testid="enrollment-server">
        Devices will register with <span className="font-mono">{server}</span>.
      </p>
    );
  }
  return (
    <WarningNotice
      testId="enrollment-server"
      title={
        <>
          {reach === "loopback" ? "Phones cannot reach" : "Only phones on this network can reach"} <span className="font-mono">{server}</span>
        </>
      }
    >
      {reach === "loopback"
        ? "It is a loopback address: it means “this machine” to whoever uses it, so a phone would look for the server on itself."
        : "It is a private address: only devices on the same network can reach it."}{" "}
      {configured ? "Change" : "Set"} <code className="font-mono">PUBLIC_API_URL</code> on the API (in <code className="font-mono">.env</code> or its
      environment) to the address phones reach it at, e.g. <span className="font-mono">https://mdm.example.com</span>, and restart it; QR codes created
      afterwards carry it.
    </WarningNotice>
  );
}

function CreatedToken({ token }: { token: CreateEnrollmentTokenResponse }) {
  const server = token.publicApiUrl ?? apiUrl;
  const qrPayload = enrollmentQrPayload(token.token, server);
  return (
    <Card>
      <CardHeader>
        <CardTitle>{token.label || "New enrollment token"}</CardTitle>
        <CardDescription>
          Simple QR code: scan it with the MDM agent already installed on each device (by hand or from a store). Good for {token.maxUses}{" "}
          {token.maxUses === 1 ? "device" : "devices"} until {formatDateTime(token.expiresAt)}. The token is shown only now: it is stored hashed.
        </CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-4">
        <ServerUrlNotice server={server} configured={token.publicApiUrl !== null} />
        <div className="flex flex-col gap-4 md:flex-row md:items-start">
          <EnrollmentQrCode value={qrPayload} />
          <div className="flex min-w-0 flex-1 flex-col gap-4">
            <div className="flex flex-col gap-2">
              <Label htmlFor="enrollment-token">Token</Label>
              <div className="flex gap-2">
                <Input
                  id="enrollment-token"
                  readOnly
                  value={token.token}
                  className="font-mono"
                  onFocus={(event) => event.target.select()}
                  data-testid="enrollment-token"
                />
                <CopyButton value={token.token} />
              </div>
            </div>
            <div className="flex flex-col gap-2">
              <Label htmlFor="enrollment-payload">QR code content</Label>
              <div className="flex gap-2">
                <Input id="enrollment-payload" readOnly value={qrPayload} className="font-mono text-xs" onFocus={(event) => event.target.select()} />
                <CopyButton value={qrPayload} />
              </div>
            </div>
          </div>
        </div>
        <ProvisioningQr token={token} server={server} />
      </CardContent>
    </Card>
  );
}

export function EnrollmentView() {
  const { canCreateEnrollmentTokens } = usePermissions();
  const [label, setLabel] = useState("");
  const [maxUses, setMaxUses] = useState("10");
  const [expiresInSeconds, setExpiresInSeconds] = useState<number>(604_800);
  const [error, setError] = useState<string>();
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreateEnrollmentTokenResponse>();
  const { data: tokens } = useEnrollmentTokens();

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = CreateEnrollmentTokenRequest.safeParse({ label: label.trim() || undefined, maxUses: Number(maxUses), expiresInSeconds });
    if (!body.success)
      return setError(
        Object.values(fieldErrors(body.error.issues, { label: "a label", maxUses: "how many devices", expiresInSeconds: "an expiry" })).join(" "),
      );
    setCreating(true);
    setError(undefined);
    try {
      setCreated(await createEnrollmentToken(body.data));
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setCreating(false);
    }
  };

  return (
    <div className="flex flex-col gap-6">
      <PageHeader title="Enrollment" description="Create a token, then scan its QR code on the devices to enroll." />
      {tokens && !created ? <ServerUrlNotice server={tokens.publicApiUrl ?? apiUrl} configured={tokens.publicApiUrl !== null} /> : null}
      {canCreateEnrollmentTokens ? (
        <Card>
          <CardHeader>
            <CardTitle>Create an enrollment token</CardTitle>
          </CardHeader>
          <CardContent>
            <form onSubmit={create} className="grid gap-4 sm:grid-cols-3 sm:items-end">
              <div className="flex flex-col gap-2">
                <Label htmlFor="token-label">Label</Label>
                <Input id="token-label" value={label} onChange={(event) => setLabel(event.target.value)} placeholder="Store 12 rollout" maxLength={200} />
              </div>
              <div className="flex flex-col gap-2">
                <Label htmlFor="token-uses">Devices it may enroll</Label>
                <Input id="token-uses" type="number" min={1} max={1_000_000} value={maxUses} onChange={(event) => setMaxUses(event.target.value)} required />
              </div>
              <div className="flex flex-col gap-2">
                <Label htmlFor="token-expiry">Expires after</Label>
                <Select value={String(expiresInSeconds)} onValueChange={(value) => setExpiresInSeconds(Number(value))}>
                  <SelectTrigger id="token-expiry">
                    <SelectValue />
                  </SelectTrigger>
                  <SelectContent>
                    {EXPIRY_CHOICES.map((choice) => (
                      <SelectItem key={choice.seconds} value={String(choice.seconds)}>
                        {choice.label}
                      </SelectItem>
                    ))}
                  </SelectContent>
                </Select>
              </div>
              <div className="flex items-center gap-3 sm:col-span-3">
                <Button type="submit" disabled={creating}>
                  {creating ? "Creating…" : "Create token"}
                </Button>
                {error ? (
                  <p role="alert" className="text-sm text-destructive">
                    {error}
                  </p>
                ) : null}
              </div>
            </form>
          </CardContent>
        </Card>
      ) : (
        <p className="text-sm text-muted-foreground">Your role cannot create enrollment tokens: ask an operator or an admin.</p>
      )}
      {created ? <CreatedToken token={created} /> : null}
      <EnrollmentTokensTable />
    </div>
  );
}
