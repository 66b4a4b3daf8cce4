"use client";

import { type BulkTarget, type Command, type CommandBatch, type CommandType, CreateBulkCommandRequest, CreateCommandRequest, apiRoutes } from "@mdm/contracts";
import { useEffect, useState } from "react";
import { mutate } from "swr";
import { deviceName } from "@/components/devices/device-status";
import {
  AlertDialog,
  AlertDialogAction,
  AlertDialogCancel,
  AlertDialogContent,
  AlertDialogDescription,
  AlertDialogFooter,
  AlertDialogHeader,
  AlertDialogTitle,
} from "@/components/ui/alert-dialog";
import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogFooter, DialogHeader, DialogTitle } from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { toast } from "@/components/ui/sonner";
import { Textarea } from "@/components/ui/textarea";
import { callApi, errorMessage } from "@/lib/api";
import { buildCommandPayload, commandTypeLabels, destructiveCommandTypes, formCommandTypes, payloadFields, ttlChoices } from "@/lib/commands";
import { batchKey } from "@/lib/swr/use-batch";
import { batchesKey } from "@/lib/swr/use-batches";
import { isCommandListKey } from "@/lib/swr/use-commands";
import { useDevices } from "@/lib/swr/use-devices";
import { fleetSummaryKey } from "@/lib/swr/use-fleet-summary";
import { useGroups } from "@/lib/swr/use-groups";

/** Who a command goes to: fixed by the page that opens the dialog, or chosen in it. */
export type CommandTarget = { kind: "devices"; deviceIds: string[]; label?: string } | { kind: "choose" };

export type SentCommand = { kind: "command"; command: Command } | { kind: "batch"; batch: CommandBatch };

type ChosenTarget = "device" | "group" | "all";

function DevicePicker({ value, onChange }: { value: string; onChange: (deviceId: string) => void }) {
  const [search, setSearch] = useState("");
  const { data } = useDevices({ search: search || undefined, limit: 8, sort: "lastSeenAt" });
  return (
    <div className="flex flex-col gap-2">
      <Input value={search} onChange={(event) => setSearch(event.target.value)} placeholder="Search devices" aria-label="Search devices to target" />
      <div role="listbox" aria-label="Devices" className="flex max-h-40 flex-col overflow-y-auto rounded-md border">
        {(data?.devices ?? []).map((device) => (
          <button
            key={device.id}
            type="button"
            role="option"
            aria-selected={device.id === value}
            onClick={() => onChange(device.id)}
            className="flex items-center justify-between px-3 py-1.5 text-left text-sm hover:bg-accent focus-visible:bg-accent focus-visible:outline-none aria-selected:bg-accent aria-selected:font-medium"
          >
            <span>{deviceName(device)}</span>
            <span className="font-mono text-xs text-muted-foreground">{device.id.slice(0, 8)}</span>
          </button>
        ))}
        {data && data.devices.length === 0 ? <p className="px-3 py-2 text-sm text-muted-foreground">No device matches.</p> : null}
      </div>
    </div>
  );
}

export function SendCommandDialog({
  open,
  onOpenChange,
  target,
  onSent,
}: {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  target: CommandTarget;
  onSent?: (sent: SentCommand) => void;
}) {
  const [type, setType] = useState<CommandType>("ping");
  const [values, setValues] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [ttlSeconds, setTtlSeconds] = useState<number>(86_400);
  const [chosen, setChosen] = useState<ChosenTarget>("device");
  const [chosenDevice, setChosenDevice] = useState("");
  const [chosenGroup, setChosenGroup] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [sending, setSending] = useState(false);
  const { data: groups } = useGroups();

  useEffect(() => {
    if (!open) return;
    setErrors({});
    setConfirming(false);
  }, [open]);

  const deviceIds = target.kind === "devices" ? target.deviceIds : chosen === "device" && chosenDevice ? [chosenDevice] : [];
  const bulkTarget: BulkTarget | undefined =
    target.kind === "devices"
      ? deviceIds.length > 1
        ? { deviceIds }
        : undefined
      : chosen === "group" && chosenGroup
        ? { group: chosenGroup }
        : chosen === "all"
          ? { all: true }
          : undefined;
  const targetLabel =
    target.kind === "devices"
      ? (target.label ?? (deviceIds.length === 1 ? "1 device" : `${deviceIds.length} devices`))
      : chosen === "group"
        ? `group ${chosenGroup || "…"}`
        : chosen === "all"
          ? "every device"
          : "1 device";

  /** The request to send, checked against the contract; undefined (with errors shown) if invalid. */
  const buildRequest = () => {
    const payload = buildCommandPayload(type, values);
    if (!payload.ok) {
      setErrors(payload.errors);
      return undefined;
    }
    if (bulkTarget) {
      const request = CreateBulkCommandRequest.safeParse({ type, payload: payload.payload, target: bulkTarget, ttlSeconds });
      if (request.success) return { bulk: request.data } as const;
      setErrors({ form: request.error.issues[0]?.message ?? "Invalid command" });
      return undefined;
    }
    const request = CreateCommandRequest.safeParse({ type, payload: payload.payload, deviceId: deviceIds[0], ttlSeconds });
    if (request.success) return { single: request.data } as const;
    setErrors({ form: deviceIds.length === 0 ? "Choose a target first" : (request.error.issues[0]?.message ?? "Invalid command") });
    return undefined;
  };

  const send = async () => {
    const request = buildRequest();
    if (!request) return;
    setSending(true);
    try {
      if (request.single) {
        const command = await callApi(apiRoutes.createCommand, { body: request.single });
        toast.success(`${commandTypeLabels[type]} queued for ${targetLabel}`);
        onSent?.({ kind: "command", command });
      } else {
        const batch = await callApi(apiRoutes.createBulkCommand, { body: request.bulk });
        // The batch view opens on the batch as created, not on a placeholder until it is fetched.
        await mutate(batchKey(batch.batchId), batch, { revalidate: false });
        toast.success(`${commandTypeLabels[type]} queued for ${batch.total} ${batch.total === 1 ? "device" : "devices"}`);
        onSent?.({ kind: "batch", batch });
      }
      void mutate((key: unknown) => isCommandListKey(key) || key === fleetSummaryKey || key === batchesKey);
      setValues({});
      onOpenChange(false);
    } catch (error) {
      setErrors({ form: errorMessage(error) });
    } finally {
      setSending(false);
      setConfirming(false);
    }
  };

  const onSubmit = (event: React.FormEvent) => {
    event.preventDefault();
    setErrors({});
    if (!buildRequest()) return;
    if (destructiveCommandTypes.has(type)) setConfirming(true);
    else void send();
  };

  return (
    <>
      <Dialog open={open} onOpenChange={onOpenChange}>
        <DialogContent>
          <DialogHeader>
            <DialogTitle>Send command</DialogTitle>
            <DialogDescription>To {targetLabel}. Devices without a live connection get it by push or at their next heartbeat.</DialogDescription>
          </DialogHeader>
          <form onSubmit={onSubmit} className="flex flex-col gap-4" noValidate>
            {target.kind === "choose" ? (
              <div className="flex flex-col gap-2">
                <Label htmlFor="command-target">Target</Label>
                <Select value={chosen} onValueChange={(value) => setChosen(value as ChosenTarget)}>
                  <SelectTrigger id="command-target">
                    <SelectValue />
                  </SelectTrigger>
                  <SelectContent>
                    <SelectItem value="device">One device</SelectItem>
                    <SelectItem value="group">A group</SelectItem>
                    <SelectItem value="all">Every device</SelectItem>
                  </SelectContent>
                </Select>
                {chosen === "device" ? <DevicePicker value={chosenDevice} onChange={setChosenDevice} /> : null}
                {chosen === "group" ? (
                  <Select value={chosenGroup} onValueChange={setChosenGroup}>
                    <SelectTrigger aria-label="Group">
                      <SelectValue placeholder={groups?.groups.length ? "Choose a group" : "No groups yet"} />
                    </SelectTrigger>
                    <SelectContent>
                      {groups?.groups.map((group) => (
                        <SelectItem key={group.name} value={group.name}>
                          {group.name} ({group.devices})
                        </SelectItem>
                      ))}
                    </SelectContent>
                  </Select>
                ) : null}
              </div>
            ) : null}

            <div className="flex flex-col gap-2">
              <Label htmlFor="command-type">Command</Label>
              <Select
                value={type}
                onValueChange={(value) => {
                  setType(value as CommandType);
                  setErrors({});
                }}
              >
                <SelectTrigger id="command-type">
                  <SelectValue />
                </SelectTrigger>
                <SelectContent>
                  {formCommandTypes.map((option) => (
                    <SelectItem key={option} value={option}>
                      {commandTypeLabels[option]}
                    </SelectItem>
                  ))}
                </SelectContent>
              </Select>
            </div>

            {payloadFields[type].map((field) => {
              const id = `payload-${field.name}`;
              const common = {
                id,
                value: values[field.name] ?? "",
                placeholder: field.placeholder,
                "aria-invalid": errors[field.name] ? true : undefined,
                "aria-describedby": errors[field.name] ? `${id}-error` : undefined,
              };
              return (
                <div key={field.name} className="flex flex-col gap-2">
                  <Label htmlFor={id}>
                    {field.label}
                    {field.required ? null : <span className="font-normal text-muted-foreground">(optional)</span>}
                  </Label>
                  {field.kind === "json" ? (
                    <Textarea {...common} className="font-mono" onChange={(event) => setValues({ ...values, [field.name]: event.target.value })} />
                  ) : (
                    <Input
                      {...common}
                      type={field.kind === "number" ? "number" : field.kind === "url" ? "url" : "text"}
                      onChange={(event) => setValues({ ...values, [field.name]: event.target.value })}
                    />
                  )}
                  {errors[field.name] ? (
                    <p id={`${id}-error`} className="text-sm text-destructive">
                      {errors[field.name]}
                    </p>
                  ) : null}
                </div>
              );
            })}

            <div className="flex flex-col gap-2">
              <Label htmlFor="command-ttl">Give up if not delivered within</Label>
              <Select value={String(ttlSeconds)} onValueChange={(value) => setTtlSeconds(Number(value))}>
                <SelectTrigger id="command-ttl">
                  <SelectValue />
                </SelectTrigger>
                <SelectContent>
                  {ttlChoices.map((choice) => (
                    <SelectItem key={choice.seconds} value={String(choice.seconds)}>
                      {choice.label}
                    </SelectItem>
                  ))}
                </SelectContent>
              </Select>
            </div>

            {errors.form ? (
              <p role="alert" className="text-sm text-destructive">
                {errors.form}
              </p>
            ) : null}
            <DialogFooter>
              <Button type="button" variant="outline" onClick={() => onOpenChange(false)}>
                Cancel
              </Button>
              <Button type="submit" disabled={sending} variant={destructiveCommandTypes.has(type) ? "destructive" : "default"}>
                {sending ? "Sending…" : "Send"}
              </Button>
            </DialogFooter>
          </form>
        </DialogContent>
      </Dialog>

      <AlertDialog open={confirming} onOpenChange={setConfirming}>
        <AlertDialogContent>
          <AlertDialogHeader>
            <AlertDialogTitle>
              {commandTypeLabels[type]} {targetLabel}?
            </AlertDialogTitle>
            <AlertDialogDescription>
              {type === "reboot" && "The device restarts and whoever is using it loses what is on screen."}
              {type === "lock" && "The screen locks at once; someone on site must unlock it."}
              {type === "uninstall_app" && "The app and its data are removed from the device."}
              {type === "clear_app_data" && "All of the app's data on the device is deleted. This cannot be undone."}
            </AlertDialogDescription>
          </AlertDialogHeader>
          <AlertDialogFooter>
            <AlertDialogCancel>Cancel</AlertDialogCancel>
            <AlertDialogAction
              onClick={(event) => {
                event.preventDefault();
                void send();
              }}
              disabled={sending}
            >
              {commandTypeLabels[type]}
            </AlertDialogAction>
          </AlertDialogFooter>
        </AlertDialogContent>
      </AlertDialog>
    </>
  );
}
