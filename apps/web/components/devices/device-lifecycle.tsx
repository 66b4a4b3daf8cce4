"use client";

import { type DeviceView, LocateResult } from "@mdm/contracts";
import { useState } from "react";
import { useRouter } from "next/navigation";
import {
  AlertDialog,
  AlertDialogCancel,
  AlertDialogContent,
  AlertDialogDescription,
  AlertDialogFooter,
  AlertDialogHeader,
  AlertDialogTitle,
} from "@/components/ui/alert-dialog";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { erasureConfirmation } from "@/lib/commands";
import { formatDateTime } from "@/lib/format";
import { useCommands } from "@/lib/swr/use-commands";
import { deleteDevice, retireDevice, rotateDeviceToken, sendDeviceCommand } from "@/lib/swr/use-device-lifecycle";

type Action = "locate" | "lost_mode" | "exit_lost_mode" | "rotate" | "wipe" | "factory_reset" | "retire" | "delete";

const titles: Record<Action, string> = {
  locate: "Locate",
  lost_mode: "Lost mode",
  exit_lost_mode: "Leave lost mode",
  rotate: "Rotate token",
  wipe: "Wipe",
  factory_reset: "Factory reset",
  retire: "Retire",
  delete: "Delete",
};

const explanations: Record<Action, string> = {
  locate: "The device reports its position; it shows here once it answers.",
  lost_mode: "The device locks on a screen showing your message and phone number.",
  exit_lost_mode: "The device leaves lost mode and unlocks.",
  rotate: "The device gets a new token and command key through its own channel; its current token works until it takes them.",
  wipe: "The device erases its managed data and its enrollment, then leaves the fleet. It can come back only with a new enrollment token.",
  factory_reset: "The device erases everything and leaves the fleet. It can come back only with a new enrollment token.",
  retire: "The device's token stops working at once, its pending commands are cancelled, and it leaves lists and counts. Its history stays.",
  delete: "The device and its history (commands, telemetry) are removed for good. The audit log keeps the fact.",
};

/** The device's actions from enrollment to retirement; erasing ones need its alias (or id) typed. */
export function DeviceLifecycle({ device, canSend, canManage, canDelete }: { device: DeviceView; canSend: boolean; canManage: boolean; canDelete: boolean }) {
  const router = useRouter();
  const [action, setAction] = useState<Action>();
  const [typed, setTyped] = useState("");
  const [message, setMessage] = useState("");
  const [phoneNumber, setPhoneNumber] = useState("");
  const [busy, setBusy] = useState(false);
  const [formError, setFormError] = useState<string>();
  const retired = Boolean(device.retiredAt);
  const confirmation = erasureConfirmation(device);
  const erasing = action === "wipe" || action === "factory_reset";

  const open = (next: Action) => {
    setAction(next);
    setTyped("");
    setFormError(undefined);
  };

  const run = async () => {
    if (!action) return;
    setBusy(true);
    setFormError(undefined);
    try {
      if (action === "locate") await sendDeviceCommand({ deviceId: device.id, type: "locate", payload: {}, delivery: "auto" });
      if (action === "lost_mode")
        await sendDeviceCommand({
          deviceId: device.id,
          type: "lost_mode",
          payload: { action: "enter", message: message.trim(), phoneNumber: phoneNumber.trim() },
          delivery: "auto",
        });
      if (action === "exit_lost_mode") await sendDeviceCommand({ deviceId: device.id, type: "lost_mode", payload: { action: "exit" }, delivery: "auto" });
      if (action === "wipe" || action === "factory_reset") await sendDeviceCommand({ deviceId: device.id, type: action, payload: {}, delivery: "auto" });
      if (action === "rotate") await rotateDeviceToken(device.id);
      if (action === "retire") {
        const outcome = await retireDevice(device.id);
        toast.success(`Retired; ${outcome.cancelledCommands} pending ${outcome.cancelledCommands === 1 ? "command" : "commands"} cancelled`);
      } else if (action === "delete") {
        await deleteDevice(device.id);
        toast.success("Device deleted");
        router.push("/");
      } else {
        toast.success(`${titles[action]} sent`);
      }
      setAction(undefined);
    } catch (caught) {
      setFormError(errorMessage(caught));
    } finally {
      setBusy(false);
    }
  };

  const ready = !busy && (!erasing || typed.trim() === confirmation) && (action !== "lost_mode" || (message.trim() !== "" && phoneNumber.trim() !== ""));

  return (
    <Card>
      <CardHeader>
        <CardTitle>Lifecycle</CardTitle>
        <CardDescription>
          {retired ? `Retired ${formatDateTime(device.retiredAt ?? null)}: its token no longer works.` : "Find, lock, re-key, erase or retire this device."}
        </CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-4">
        {!retired && canSend ? (
          <div className="flex flex-wrap gap-2">
            <Button variant="outline" size="sm" onClick={() => open("locate")}>
              Locate
            </Button>
            <Button variant="outline" size="sm" onClick={() => open("lost_mode")}>
              Lost mode
            </Button>
            <Button variant="outline" size="sm" onClick={() => open("exit_lost_mode")}>
              Leave lost mode
            </Button>
            <Button variant="destructive" size="sm" onClick={() => open("wipe")}>
              Wipe
            </Button>
            <Button variant="destructive" size="sm" onClick={() => open("factory_reset")}>
              Factory reset
            </Button>
          </div>
        ) : null}
        {canManage ? (
          <div className="flex flex-wrap gap-2">
            {retired ? null : (
              <Button variant="outline" size="sm" onClick={() => open("rotate")}>
                Rotate token
              </Button>
            )}
            {retired ? null : (
              <Button variant="destructive" size="sm" onClick={() => open("retire")}>
                Retire
              </Button>
            )}
            {retired && canDelete ? (
              <Button variant="destructive" size="sm" onClick={() => open("delete")}>
                Delete device
              </Button>
            ) : null}
          </div>
        ) : null}
        <LastPosition deviceId={device.id} />
      </CardContent>

      <AlertDialog open={action !== undefined} onOpenChange={(next) => (next ? undefined : setAction(undefined))}>
        <AlertDialogContent>
          <AlertDialogHeader>
            <AlertDialogTitle>{action ? `${titles[action]}?` : ""}</AlertDialogTitle>
            <AlertDialogDescription>{action ? explanations[action] : ""}</AlertDialogDescription>
          </AlertDialogHeader>
          {action === "lost_mode" ? (
            <div className="flex flex-col gap-2">
              <Label htmlFor="lost-message">Message on the lock screen</Label>
              <Input id="lost-message" value={message} onChange={(event) => setMessage(event.target.value)} placeholder="This device is lost. Please call:" />
              <Label htmlFor="lost-phone">Phone number</Label>
              <Input id="lost-phone" value={phoneNumber} onChange={(event) => setPhoneNumber(event.target.value)} placeholder="+49 431 123456" />
            </div>
          ) : null}
          {erasing ? (
            <div className="flex flex-col gap-2">
              <Label htmlFor="erase-confirmation">
                Type <span className="font-mono font-semibold">{confirmation}</span> to confirm
              </Label>
              <Input id="erase-confirmation" value={typed} onChange={(event) => setTyped(event.target.value)} autoComplete="off" />
            </div>
          ) : null}
          {formError ? <p className="text-sm text-destructive">{formError}</p> : null}
          <AlertDialogFooter>
            <AlertDialogCancel>Cancel</AlertDialogCancel>
            <Button
              variant={action === "locate" || action === "exit_lost_mode" || action === "rotate" ? "default" : "destructive"}
              disabled={!ready}
              onClick={() => void run()}
            >
              {action ? titles[action] : ""}
            </Button>
          </AlertDialogFooter>
        </AlertDialogContent>
      </AlertDialog>
    </Card>
  );
}

/** Where a point falls on a plain equirectangular frame, in a 360 x 180 box. */
function project(latitude: number, longitude: number) {
  return { x: longitude + 180, y: 90 - latitude };
}

/**
 * The last position the device reported: its latest succeeded `locate`. Drawn without map
 * tiles (a graticule and the point), so it works offline; the link opens OpenStreetMap.
 */
export function LastPosition({ deviceId }: { deviceId: string }) {
  // The result comes from the device some time after the command: look again every few seconds.
  const { data } = useCommands({ deviceId, type: "locate", status: "succeeded", limit: 1 }, { refreshInterval: 3_000 });
  const latest = data?.commands[0];
  const parsed = latest ? LocateResult.safeParse(latest.result) : undefined;
  if (!parsed?.success) {
    return (
      <p className="text-sm text-muted-foreground" data-testid="device-position">
        No position reported yet.
      </p>
    );
  }
  const { latitude, longitude, accuracyMeters } = parsed.data;
  const point = project(latitude, longitude);
  const osm = `https://www.openstreetmap.org/?mlat=${latitude}&mlon=${longitude}#map=16/${latitude}/${longitude}`;
  return (
    <div className="flex flex-col gap-2" data-testid="device-position">
      <p className="text-sm">
        Last position:{" "}
        <span className="font-mono" data-testid="device-coordinates">
          {latitude.toFixed(5)}, {longitude.toFixed(5)}
        </span>{" "}
        (±{Math.round(accuracyMeters)} m, {formatDateTime(latest?.completedAt ?? null)}){" "}
        <a className="underline" href={osm} target="_blank" rel="noreferrer noopener">
          Open in OpenStreetMap
        </a>
      </p>
      <svg
        viewBox="0 0 360 180"
        className="h-auto w-full max-w-md rounded border bg-muted/40"
        role="img"
        aria-label={`Position ${latitude.toFixed(3)}, ${longitude.toFixed(3)} on a world grid`}
      >
        {[-60, -30, 0, 30, 60].map((lat) => (
          <line key={`lat${lat}`} x1={0} x2={360} y1={90 - lat} y2={90 - lat} stroke="currentColor" strokeOpacity={lat === 0 ? 0.35 : 0.12} />
        ))}
        {[-120, -60, 0, 60, 120].map((lon) => (
          <line key={`lon${lon}`} y1={0} y2={180} x1={lon + 180} x2={lon + 180} stroke="currentColor" strokeOpacity={lon === 0 ? 0.35 : 0.12} />
        ))}
        <circle cx={point.x} cy={point.y} r={6} fill="hsl(0 80% 55%)" fillOpacity={0.25} />
        <circle cx={point.x} cy={point.y} r={2.5} fill="hsl(0 80% 50%)" />
      </svg>
    </div>
  );
}
