"use client";

import { type CreateEnrollmentTokenResponse, CreateEnrollmentTokenRequest } from "@mdm/contracts";
import { useState } from "react";
import { CopyButton } from "@/components/copy-button";
import { usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { errorMessage } from "@/lib/api";
import { enrollmentQrPayload } from "@/lib/enrollment";
import { formatDateTime } from "@/lib/format";
import { createEnrollmentToken } from "@/lib/swr/use-enrollment-tokens";
import { EnrollmentQrCode } from "./enrollment-qr-code";
import { EnrollmentTokensTable } from "./enrollment-tokens-table";

const EXPIRY_CHOICES = [
  { label: "1 hour", seconds: 3_600 },
  { label: "1 day", seconds: 86_400 },
  { label: "7 days", seconds: 604_800 },
  { label: "30 days", seconds: 2_592_000 },
] as const;

function CreatedToken({ token }: { token: CreateEnrollmentTokenResponse }) {
  const qrPayload = enrollmentQrPayload(token.token);
  return (
    <Card>
      <CardHeader>
        <CardTitle>{token.label || "New enrollment token"}</CardTitle>
        <CardDescription>
          Scan with the MDM agent on each device. Good for {token.maxUses} {token.maxUses === 1 ? "device" : "devices"} until {formatDateTime(token.expiresAt)}. The token is shown
          only now: it is stored hashed.
        </CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-4 md:flex-row md:items-start">
        <EnrollmentQrCode value={qrPayload} />
        <div className="flex min-w-0 flex-1 flex-col gap-4">
          <div className="flex flex-col gap-2">
            <Label htmlFor="enrollment-token">Token</Label>
            <div className="flex gap-2">
              <Input id="enrollment-token" readOnly value={token.token} className="font-mono" onFocus={(event) => event.target.select()} data-testid="enrollment-token" />
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

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = CreateEnrollmentTokenRequest.safeParse({ label: label.trim() || undefined, maxUses: Number(maxUses), expiresInSeconds });
    if (!body.success) return setError(`${body.error.issues[0]?.path.join(".")}: ${body.error.issues[0]?.message}`);
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
