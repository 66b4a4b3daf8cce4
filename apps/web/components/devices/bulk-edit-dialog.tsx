"use client";

import { BulkEditDevicesRequest } from "@mdm/contracts";
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { Checkbox } from "@/components/ui/checkbox";
import { Dialog, DialogContent, DialogDescription, DialogFooter, DialogHeader, DialogTitle } from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { bulkEditDevices } from "@/lib/swr/use-device-lifecycle";

const groupList = (text: string) =>
  text
    .split(",")
    .map((group) => group.trim())
    .filter(Boolean);

/** Groups, alias prefix and retirement for the selected devices, in one request. */
export function BulkEditDialog({
  open,
  onOpenChange,
  deviceIds,
  onDone,
}: {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  deviceIds: string[];
  onDone: () => void;
}) {
  const [addGroups, setAddGroups] = useState("");
  const [removeGroups, setRemoveGroups] = useState("");
  const [aliasPrefix, setAliasPrefix] = useState("");
  const [retire, setRetire] = useState(false);
  const [formError, setFormError] = useState<string>();
  const [saving, setSaving] = useState(false);

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    const add = groupList(addGroups);
    const remove = groupList(removeGroups);
    const request = BulkEditDevicesRequest.safeParse({
      target: { deviceIds },
      ...(add.length > 0 ? { addGroups: add } : {}),
      ...(remove.length > 0 ? { removeGroups: remove } : {}),
      ...(aliasPrefix.trim() ? { aliasPrefix: aliasPrefix.trim() } : {}),
      ...(retire ? { retire: true } : {}),
    });
    if (!request.success) {
      setFormError(request.error.issues[0]?.message ?? "Nothing to change");
      return;
    }
    setSaving(true);
    setFormError(undefined);
    try {
      const outcome = await bulkEditDevices(request.data);
      toast.success(`${outcome.matched} ${outcome.matched === 1 ? "device" : "devices"}: ${outcome.updated} updated, ${outcome.retired} retired`);
      setAddGroups("");
      setRemoveGroups("");
      setAliasPrefix("");
      setRetire(false);
      onOpenChange(false);
      onDone();
    } catch (caught) {
      setFormError(errorMessage(caught));
    } finally {
      setSaving(false);
    }
  };

  return (
    <Dialog open={open} onOpenChange={onOpenChange}>
      <DialogContent>
        <form onSubmit={save} className="flex flex-col gap-4">
          <DialogHeader>
            <DialogTitle>
              Edit {deviceIds.length} selected {deviceIds.length === 1 ? "device" : "devices"}
            </DialogTitle>
            <DialogDescription>Groups are comma-separated. The alias prefix names the devices prefix001, prefix002… in order of enrollment.</DialogDescription>
          </DialogHeader>
          <div className="flex flex-col gap-2">
            <Label htmlFor="bulk-add-groups">Add to groups</Label>
            <Input id="bulk-add-groups" value={addGroups} onChange={(event) => setAddGroups(event.target.value)} placeholder="lobby, north" />
            <Label htmlFor="bulk-remove-groups">Remove from groups</Label>
            <Input id="bulk-remove-groups" value={removeGroups} onChange={(event) => setRemoveGroups(event.target.value)} />
            <Label htmlFor="bulk-alias-prefix">Alias prefix</Label>
            <Input id="bulk-alias-prefix" value={aliasPrefix} onChange={(event) => setAliasPrefix(event.target.value)} placeholder="Till-" />
            <label className="flex items-center gap-2 text-sm" htmlFor="bulk-retire">
              <Checkbox id="bulk-retire" checked={retire} onCheckedChange={(checked) => setRetire(checked === true)} />
              Retire them: their tokens stop working and they leave the fleet
            </label>
          </div>
          {formError ? <p className="text-sm text-destructive">{formError}</p> : null}
          <DialogFooter>
            <Button type="button" variant="ghost" onClick={() => onOpenChange(false)}>
              Cancel
            </Button>
            <Button type="submit" variant={retire ? "destructive" : "default"} disabled={saving}>
              Apply
            </Button>
          </DialogFooter>
        </form>
      </DialogContent>
    </Dialog>
  );
}
