"use client";

import { type ApiKey, type CreateApiKeyResponse, UserRole } from "@mdm/contracts";
import { useState } from "react";
import { CopyButton } from "@/components/copy-button";
import { usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Skeleton } from "@/components/ui/skeleton";
import { toast } from "@/components/ui/sonner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { errorMessage } from "@/lib/api";
import { formatDateTime } from "@/lib/format";
import { roleDescriptions } from "@/lib/permissions";
import { createApiKey, revokeApiKey, useApiKeys } from "@/lib/swr/use-integrations";

function CreateApiKeyForm({ onCreated }: { onCreated: (key: CreateApiKeyResponse) => void }) {
  const [name, setName] = useState("");
  const [role, setRole] = useState<UserRole>("viewer");
  const [expiresAt, setExpiresAt] = useState("");
  const [cidrs, setCidrs] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const allowedCidrs = cidrs
        .split(/[\s,]+/)
        .map((cidr) => cidr.trim())
        .filter(Boolean);
      const key = await createApiKey({ name: name.trim(), role, allowedCidrs, ...(expiresAt ? { expiresAt: new Date(expiresAt).toISOString() } : {}) });
      setName("");
      setExpiresAt("");
      setCidrs("");
      onCreated(key);
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="grid gap-4 rounded-lg border p-4 md:grid-cols-2" aria-label="Create an API key" noValidate>
      <div className="flex flex-col gap-2">
        <Label htmlFor="api-key-name">Name</Label>
        <Input id="api-key-name" value={name} onChange={(event) => setName(event.target.value)} placeholder="ticketing-sync" required />
      </div>
      <div className="flex flex-col gap-2">
        <Label htmlFor="api-key-role">Role</Label>
        <select
          id="api-key-role"
          className="h-9 rounded-md border bg-transparent px-3 text-sm"
          value={role}
          onChange={(event) => setRole(event.target.value as UserRole)}
        >
          {UserRole.options.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
        <p className="text-xs text-muted-foreground">{roleDescriptions[role]}</p>
      </div>
      <div className="flex flex-col gap-2">
        <Label htmlFor="api-key-expires">Expires (optional)</Label>
        <Input id="api-key-expires" type="datetime-local" value={expiresAt} onChange={(event) => setExpiresAt(event.target.value)} />
      </div>
      <div className="flex flex-col gap-2">
        <Label htmlFor="api-key-cidrs">Allowed address ranges (optional)</Label>
        <Input id="api-key-cidrs" value={cidrs} onChange={(event) => setCidrs(event.target.value)} placeholder="203.0.113.0/24, 2001:db8::/32" />
      </div>
      {error ? (
        <p role="alert" className="text-sm text-destructive md:col-span-2">
          {error}
        </p>
      ) : null}
      <div className="md:col-span-2">
        <Button type="submit" disabled={busy || name.trim() === ""}>
          Create key
        </Button>
      </div>
    </form>
  );
}

function CreatedKey({ created }: { created: CreateApiKeyResponse }) {
  return (
    <div role="status" data-testid="api-key-created" className="flex flex-col gap-2 rounded-lg border border-warning/60 bg-warning/15 p-4 text-sm">
      <p className="font-medium">Copy the secret of “{created.name}” now: it is never shown again.</p>
      <div className="flex flex-wrap items-center gap-2">
        <span className="text-muted-foreground">X-Admin</span>
        <code data-testid="api-key-id" className="rounded bg-muted px-2 py-1">
          {created.id}
        </code>
        <CopyButton value={created.id} label="Copy id" />
      </div>
      <div className="flex flex-wrap items-center gap-2">
        <span className="text-muted-foreground">Secret</span>
        <code data-testid="api-key-secret" className="break-all rounded bg-muted px-2 py-1">
          {created.secret}
        </code>
        <CopyButton value={created.secret} label="Copy secret" />
      </div>
      <p className="text-muted-foreground">
        Sign requests as the README's “Signing admin requests” says, with the id as X-Admin and the secret as the HMAC key.
      </p>
    </div>
  );
}

function KeyRow({ apiKey }: { apiKey: ApiKey }) {
  const revoke = async () => {
    try {
      await revokeApiKey(apiKey.id);
      toast.success(`API key ${apiKey.name} revoked`);
    } catch (caught) {
      toast.error(errorMessage(caught));
    }
  };
  return (
    <TableRow data-testid="api-key-row">
      <TableCell className="font-medium">{apiKey.name}</TableCell>
      <TableCell>
        <code className="text-xs">{apiKey.id}</code>
      </TableCell>
      <TableCell>{apiKey.role}</TableCell>
      <TableCell className="text-muted-foreground">{apiKey.allowedCidrs.length ? apiKey.allowedCidrs.join(", ") : "any"}</TableCell>
      <TableCell className="text-muted-foreground">{apiKey.expiresAt ? formatDateTime(apiKey.expiresAt) : "never"}</TableCell>
      <TableCell data-testid="api-key-last-used" className="text-muted-foreground">
        {apiKey.lastUsedAt ? `${formatDateTime(apiKey.lastUsedAt)}${apiKey.lastUsedIp ? ` from ${apiKey.lastUsedIp}` : ""}` : "never"}
      </TableCell>
      <TableCell>
        {apiKey.revokedAt ? (
          <span data-testid="api-key-revoked" className="text-muted-foreground">
            revoked {formatDateTime(apiKey.revokedAt)}
          </span>
        ) : (
          <Button variant="outline" size="sm" onClick={() => void revoke()}>
            Revoke
          </Button>
        )}
      </TableCell>
    </TableRow>
  );
}

export function ApiKeysView() {
  const { canManageApiKeys } = usePermissions();
  const keys = useApiKeys(canManageApiKeys);
  const [created, setCreated] = useState<CreateApiKeyResponse>();
  if (!canManageApiKeys) return <EmptyState title="Only admins manage API keys" />;
  return (
    <div className="flex flex-col gap-6">
      <PageHeader
        title="API keys"
        description="One key per integration: it signs requests with its own secret and acts with its role; the audit log names it."
      />
      <CreateApiKeyForm onCreated={setCreated} />
      {created ? <CreatedKey created={created} /> : null}
      <div className="rounded-lg border">
        {keys.error && !keys.data ? (
          <ErrorState error={keys.error} onRetry={() => void keys.mutate()} />
        ) : !keys.data ? (
          <Skeleton className="m-2 h-24" />
        ) : keys.data.keys.length === 0 ? (
          <EmptyState title="No API keys yet" />
        ) : (
          <Table>
            <TableHeader>
              <TableRow>
                <TableHead>Name</TableHead>
                <TableHead>Id (X-Admin)</TableHead>
                <TableHead>Role</TableHead>
                <TableHead>Addresses</TableHead>
                <TableHead>Expires</TableHead>
                <TableHead>Last used</TableHead>
                <TableHead />
              </TableRow>
            </TableHeader>
            <TableBody>
              {keys.data.keys.map((apiKey) => (
                <KeyRow key={apiKey.id} apiKey={apiKey} />
              ))}
            </TableBody>
          </Table>
        )}
      </div>
    </div>
  );
}
