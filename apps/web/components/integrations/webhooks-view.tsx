"use client";

import { type CreateWebhookResponse, type WebhookEndpoint, WebhookEventType } from "@mdm/contracts";
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
import { createWebhook, deleteWebhook, pingWebhook, useWebhookDeliveries, useWebhooks } from "@/lib/swr/use-integrations";

function CreateWebhookForm({ onCreated }: { onCreated: (webhook: CreateWebhookResponse) => void }) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState<WebhookEventType[]>(["device.offline", "device.online"]);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const toggle = (event: WebhookEventType, checked: boolean) =>
    setEvents((current) => (checked ? [...current, event] : current.filter((item) => item !== event)));

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const created = await createWebhook({ url: url.trim(), events });
      setUrl("");
      onCreated(created);
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="flex flex-col gap-4 rounded-lg border p-4" aria-label="Register a webhook" noValidate>
      <div className="flex flex-col gap-2">
        <Label htmlFor="webhook-url">URL</Label>
        <Input id="webhook-url" value={url} onChange={(event) => setUrl(event.target.value)} placeholder="https://hooks.example.com/mdm" required />
      </div>
      <fieldset className="flex flex-wrap gap-x-4 gap-y-2">
        <legend className="mb-2 text-sm font-medium">Events</legend>
        {WebhookEventType.options.map((option) => (
          <label key={option} className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={events.includes(option)} onChange={(event) => toggle(option, event.target.checked)} />
            {option}
          </label>
        ))}
      </fieldset>
      {error ? (
        <p role="alert" className="text-sm text-destructive">
          {error}
        </p>
      ) : null}
      <div>
        <Button type="submit" disabled={busy || url.trim() === "" || events.length === 0}>
          Register webhook
        </Button>
      </div>
    </form>
  );
}

function Deliveries({ webhookId }: { webhookId: string }) {
  const deliveries = useWebhookDeliveries(webhookId);
  if (deliveries.error && !deliveries.data) return <ErrorState error={deliveries.error} onRetry={() => void deliveries.mutate()} />;
  if (!deliveries.data) return <Skeleton className="m-2 h-12" />;
  if (deliveries.data.deliveries.length === 0) return <p className="p-3 text-sm text-muted-foreground">No deliveries yet.</p>;
  return (
    <Table>
      <TableHeader>
        <TableRow>
          <TableHead>Created</TableHead>
          <TableHead>Event</TableHead>
          <TableHead>Status</TableHead>
          <TableHead>Attempts</TableHead>
          <TableHead>Last response</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {deliveries.data.deliveries.map((delivery) => (
          <TableRow key={delivery.id} data-testid="webhook-delivery-row">
            <TableCell className="text-muted-foreground">{formatDateTime(delivery.createdAt)}</TableCell>
            <TableCell>{delivery.eventType}</TableCell>
            <TableCell data-testid="webhook-delivery-status">{delivery.status}</TableCell>
            <TableCell>{delivery.attempts}</TableCell>
            <TableCell className="text-muted-foreground">
              {delivery.lastStatusCode ?? ""} {delivery.lastError ?? ""}
              {delivery.status === "queued" && delivery.nextAttemptAt ? ` · next try ${formatDateTime(delivery.nextAttemptAt)}` : ""}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function WebhookCard({ webhook }: { webhook: WebhookEndpoint }) {
  const ping = async () => {
    try {
      await pingWebhook(webhook.id);
      toast.success("Test ping queued");
    } catch (caught) {
      toast.error(errorMessage(caught));
    }
  };
  const remove = async () => {
    try {
      await deleteWebhook(webhook.id);
      toast.success("Webhook deleted");
    } catch (caught) {
      toast.error(errorMessage(caught));
    }
  };
  return (
    <section data-testid="webhook" className="flex flex-col gap-2 rounded-lg border">
      <div className="flex flex-wrap items-center justify-between gap-2 p-3">
        <div>
          <p className="font-medium break-all">{webhook.url}</p>
          <p className="text-xs text-muted-foreground">{webhook.events.join(", ")}</p>
        </div>
        <div className="flex gap-2">
          <Button variant="outline" size="sm" onClick={() => void ping()}>
            Send test ping
          </Button>
          <Button variant="outline" size="sm" onClick={() => void remove()}>
            Delete
          </Button>
        </div>
      </div>
      <Deliveries webhookId={webhook.id} />
    </section>
  );
}

export function WebhooksView() {
  const { canManageWebhooks } = usePermissions();
  const webhooks = useWebhooks(canManageWebhooks);
  const [created, setCreated] = useState<CreateWebhookResponse>();
  if (!canManageWebhooks) return <EmptyState title="Only admins manage webhooks" />;
  return (
    <div className="flex flex-col gap-6">
      <PageHeader title="Webhooks" description="Fleet events POSTed as signed JSON to your endpoints, retried for 24 hours until they answer 2xx." />
      <CreateWebhookForm onCreated={setCreated} />
      {created ? (
        <div
          role="status"
          data-testid="webhook-created"
          className="flex flex-wrap items-center gap-2 rounded-lg border border-warning/60 bg-warning/15 p-4 text-sm"
        >
          <span className="font-medium">Signing secret (shown once):</span>
          <code data-testid="webhook-secret" className="break-all rounded bg-muted px-2 py-1">
            {created.secret}
          </code>
          <CopyButton value={created.secret} label="Copy secret" />
        </div>
      ) : null}
      {webhooks.error && !webhooks.data ? (
        <ErrorState error={webhooks.error} onRetry={() => void webhooks.mutate()} />
      ) : !webhooks.data ? (
        <Skeleton className="h-24" />
      ) : webhooks.data.webhooks.length === 0 ? (
        <EmptyState title="No webhooks yet" />
      ) : (
        webhooks.data.webhooks.map((webhook) => <WebhookCard key={webhook.id} webhook={webhook} />)
      )}
    </div>
  );
}
