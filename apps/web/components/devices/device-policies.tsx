"use client";

import type { DeviceView } from "@mdm/contracts";
import { TrashIcon } from "lucide-react";
import { useState } from "react";
import {
  AlertDialog,
  AlertDialogAction,
  AlertDialogCancel,
  AlertDialogContent,
  AlertDialogDescription,
  AlertDialogFooter,
  AlertDialogHeader,
  AlertDialogTitle,
  AlertDialogTrigger,
} from "@/components/ui/alert-dialog";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { createPolicy, deletePolicy, updatePolicy, usePolicies } from "@/lib/swr/use-policies";

/** Auto-relaunch: apps the server keeps running on this device, its own and its groups'. */
export function DevicePolicies({ device, editable }: { device: DeviceView; editable: boolean }) {
  const { data, error } = usePolicies();
  const [packageName, setPackageName] = useState("");
  const [formError, setFormError] = useState<string>();
  const [saving, setSaving] = useState(false);
  const policies = (data?.policies ?? []).filter((policy) => policy.deviceId === device.id || (policy.group !== null && device.groups.includes(policy.group)));

  const add = async (event: React.FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setFormError(undefined);
    try {
      await createPolicy({ deviceId: device.id, packageName: packageName.trim(), enabled: true });
      setPackageName("");
      toast.success("The server now keeps this app running");
    } catch (caught) {
      setFormError(errorMessage(caught));
    } finally {
      setSaving(false);
    }
  };

  return (
    <Card>
      <CardHeader>
        <CardTitle>Auto-relaunch</CardTitle>
        <CardDescription>When a heartbeat reports one of these apps not running, the server relaunches it.</CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-3">
        {error && !data ? <p className="text-sm text-destructive">{errorMessage(error)}</p> : null}
        {data && policies.length === 0 ? <p className="text-sm text-muted-foreground">No app is kept running on this device.</p> : null}
        <ul className="flex flex-col gap-2">
          {policies.map((policy) => (
            <li key={policy.id} className="flex items-center justify-between gap-2 text-sm">
              <span className="font-mono">{policy.packageName}</span>
              <span className="flex items-center gap-2">
                {policy.group ? <Badge variant="outline">via group {policy.group}</Badge> : null}
                {policy.enabled ? null : <Badge variant="secondary">disabled</Badge>}
                {editable && policy.deviceId ? (
                  <Button
                    variant="ghost"
                    size="sm"
                    onClick={() => updatePolicy(policy.id, { enabled: !policy.enabled }).catch((caught: unknown) => toast.error(errorMessage(caught)))}
                  >
                    {policy.enabled ? "Disable" : "Enable"}
                  </Button>
                ) : null}
                {editable && policy.deviceId ? (
                  <AlertDialog>
                    <AlertDialogTrigger asChild>
                      <Button variant="ghost" size="icon" className="size-7" aria-label={`Stop relaunching ${policy.packageName}`}>
                        <TrashIcon />
                      </Button>
                    </AlertDialogTrigger>
                    <AlertDialogContent>
                      <AlertDialogHeader>
                        <AlertDialogTitle>Stop relaunching {policy.packageName}?</AlertDialogTitle>
                        <AlertDialogDescription>The app stays installed; the server just no longer restarts it.</AlertDialogDescription>
                      </AlertDialogHeader>
                      <AlertDialogFooter>
                        <AlertDialogCancel>Keep</AlertDialogCancel>
                        <AlertDialogAction onClick={() => deletePolicy(policy.id).catch((caught: unknown) => toast.error(errorMessage(caught)))}>
                          Remove
                        </AlertDialogAction>
                      </AlertDialogFooter>
                    </AlertDialogContent>
                  </AlertDialog>
                ) : null}
              </span>
            </li>
          ))}
        </ul>
        {editable ? (
          <form onSubmit={add} className="flex flex-col gap-2">
            <Label htmlFor="policy-package">Keep an app running</Label>
            <div className="flex gap-2">
              <Input
                id="policy-package"
                value={packageName}
                onChange={(event) => setPackageName(event.target.value)}
                placeholder="com.example.kiosk"
                required
              />
              <Button type="submit" variant="outline" disabled={saving || !packageName.trim()}>
                Add
              </Button>
            </div>
            {formError ? <p className="text-sm text-destructive">{formError}</p> : null}
          </form>
        ) : null}
      </CardContent>
    </Card>
  );
}
