"use client";

import { type DeviceView, GroupName, UpdateDeviceRequest } from "@mdm/contracts";
import { XIcon } from "lucide-react";
import { useEffect, useState } from "react";
import { mutate } from "swr";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { toast } from "@/components/ui/sonner";
import { Textarea } from "@/components/ui/textarea";
import { errorMessage } from "@/lib/api";
import { updateDevice } from "@/lib/swr/use-device";
import { isDeviceListKey } from "@/lib/swr/use-devices";
import { groupsKey } from "@/lib/swr/use-groups";

/** Alias, notes and groups: the parts of a device that people set. */
export function DeviceDetailsForm({ device, editable }: { device: DeviceView; editable: boolean }) {
  const [alias, setAlias] = useState(device.alias ?? "");
  const [notes, setNotes] = useState(device.notes ?? "");
  const [groups, setGroups] = useState(device.groups);
  const [newGroup, setNewGroup] = useState("");
  const [error, setError] = useState<string>();
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    setAlias(device.alias ?? "");
    setNotes(device.notes ?? "");
    setGroups(device.groups);
  }, [device.alias, device.notes, device.groups]);

  const dirty = alias !== (device.alias ?? "") || notes !== (device.notes ?? "") || groups.join("\n") !== device.groups.join("\n");

  const addGroup = () => {
    const name = newGroup.trim();
    if (!name) return;
    const parsed = GroupName.safeParse(name);
    if (!parsed.success) return setError(parsed.error.issues[0]?.message);
    if (!groups.includes(name)) setGroups([...groups, name]);
    setNewGroup("");
    setError(undefined);
  };

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = UpdateDeviceRequest.safeParse({ alias: alias.trim() || null, notes: notes.trim() || null, groups });
    if (!body.success) return setError(body.error.issues[0]?.message);
    setSaving(true);
    setError(undefined);
    try {
      await updateDevice(device.id, body.data);
      void mutate((key: unknown) => isDeviceListKey(key) || key === groupsKey);
      toast.success("Device saved");
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setSaving(false);
    }
  };

  return (
    <Card>
      <CardHeader>
        <CardTitle>Details</CardTitle>
      </CardHeader>
      <CardContent>
        <form onSubmit={save} className="flex flex-col gap-4">
          <fieldset disabled={!editable} className="flex flex-col gap-4">
            <div className="flex flex-col gap-2">
              <Label htmlFor="device-alias">Alias</Label>
              <Input id="device-alias" value={alias} onChange={(event) => setAlias(event.target.value)} maxLength={100} placeholder="Front desk kiosk" />
            </div>
            <div className="flex flex-col gap-2">
              <Label htmlFor="device-notes">Notes</Label>
              <Textarea id="device-notes" value={notes} onChange={(event) => setNotes(event.target.value)} maxLength={2000} />
            </div>
            <div className="flex flex-col gap-2">
              <Label htmlFor="device-new-group">Groups</Label>
              <div className="flex flex-wrap gap-1">
                {groups.length === 0 ? <span className="text-sm text-muted-foreground">No groups</span> : null}
                {groups.map((group) => (
                  <Badge key={group} variant="secondary" className="gap-1 pr-1">
                    {group}
                    {editable ? (
                      <button
                        type="button"
                        onClick={() => setGroups(groups.filter((item) => item !== group))}
                        aria-label={`Remove group ${group}`}
                        className="rounded-sm hover:bg-background/60"
                      >
                        <XIcon />
                      </button>
                    ) : null}
                  </Badge>
                ))}
              </div>
              {editable ? (
                <div className="flex gap-2">
                  <Input
                    id="device-new-group"
                    value={newGroup}
                    onChange={(event) => setNewGroup(event.target.value)}
                    onKeyDown={(event) => {
                      if (event.key === "Enter") {
                        event.preventDefault();
                        addGroup();
                      }
                    }}
                    placeholder="Add a group, e.g. store-12"
                  />
                  <Button type="button" variant="outline" onClick={addGroup}>
                    Add
                  </Button>
                </div>
              ) : null}
            </div>
          </fieldset>
          {error ? (
            <p role="alert" className="text-sm text-destructive">
              {error}
            </p>
          ) : null}
          {editable ? (
            <div>
              <Button type="submit" disabled={!dirty || saving}>
                {saving ? "Saving…" : "Save"}
              </Button>
            </div>
          ) : null}
        </form>
      </CardContent>
    </Card>
  );
}
