"use client";

import type { DevicePolicyView } from "@mdm/contracts";
import Link from "next/link";
import { useGroups } from "@/lib/swr/use-groups";
import { useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { formatDateTime } from "@/lib/format";
import {
  assignDevicePolicy,
  createDevicePolicy,
  revertDevicePolicy,
  unassignDevicePolicy,
  useDevicePolicies,
  usePolicyCompliance,
  usePolicyVersions,
} from "@/lib/swr/use-device-policies";
import { PolicyEditor } from "./policy-editor";

function ComplianceCounts() {
  const { data } = usePolicyCompliance();
  if (!data) return null;
  const items = [
    { key: "compliant", label: "Compliant", variant: "success" as const },
    { key: "pending", label: "Pending", variant: "warning" as const },
    { key: "failed", label: "Failed", variant: "destructive" as const },
    { key: "none", label: "No policy", variant: "secondary" as const },
  ];
  return (
    <div className="flex flex-wrap items-center gap-2" data-testid="compliance-counts">
      {items.map((item) => (
        <Badge key={item.key} variant={item.variant} data-testid={`compliance-${item.key}`}>
          {item.label}: {data[item.key as keyof typeof data]}
        </Badge>
      ))}
      <Link href="/?compliance=noncompliant" className="text-sm underline underline-offset-4">
        List the non-compliant devices
      </Link>
    </div>
  );
}

const show = (value: unknown) => (value === undefined ? "—" : JSON.stringify(value));

function History({ policy, editable }: { policy: DevicePolicyView; editable: boolean }) {
  const { data, error } = usePolicyVersions(policy.id);
  if (error) return <ErrorState error={error} />;
  return (
    <ol className="flex flex-col gap-3" data-testid="policy-history">
      {data?.versions.map((version) => (
        <li key={version.version} className="rounded-md border p-3 text-sm" data-testid={`policy-version-${version.version}`}>
          <div className="flex flex-wrap items-center gap-2">
            <span className="font-medium">Version {version.version}</span>
            {version.version === policy.version ? <Badge variant="secondary">current</Badge> : null}
            {version.revertedFrom ? <Badge variant="outline">restores version {version.revertedFrom}</Badge> : null}
            <span className="text-muted-foreground">
              by {version.createdBy}, {formatDateTime(version.createdAt)}
            </span>
            {editable && version.version !== policy.version ? (
              <Button
                size="sm"
                variant="outline"
                className="ml-auto"
                onClick={async () => {
                  try {
                    const saved = await revertDevicePolicy(policy.id, version.version);
                    toast.success(`Version ${version.version} restored as version ${saved.version}`);
                  } catch (caught) {
                    toast.error(errorMessage(caught));
                  }
                }}
              >
                Revert to this version
              </Button>
            ) : null}
          </div>
          <ul className="mt-2 flex flex-col gap-1 font-mono text-xs">
            {version.changes.map((change) => (
              <li key={change.path}>
                {change.path}: <span className="text-destructive line-through">{show(change.before)}</span> →{" "}
                <span className="text-success">{show(change.after)}</span>
              </li>
            ))}
          </ul>
        </li>
      ))}
    </ol>
  );
}

function Assignments({ policy, editable }: { policy: DevicePolicyView; editable: boolean }) {
  const [target, setTarget] = useState("");
  const [priority, setPriority] = useState("0");
  const { data: groups } = useGroups();
  const [error, setError] = useState<string>();
  const add = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const value = target.trim();
    const isDevice = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
    try {
      await assignDevicePolicy(
        policy.id,
        isDevice ? { deviceId: value.toLowerCase(), priority: Number(priority) } : { group: value, priority: Number(priority) },
      );
      setTarget("");
    } catch (caught) {
      setError(errorMessage(caught));
    }
  };
  return (
    <div className="flex flex-col gap-3">
      <ul className="flex flex-col gap-2 text-sm" data-testid="policy-assignments">
        {policy.assignments.length === 0 ? <li className="text-muted-foreground">Not assigned: no device gets this policy.</li> : null}
        {policy.assignments.map((assignment) => (
          <li key={assignment.id} className="flex items-center gap-2">
            {assignment.kind === "device" ? (
              <Link href={`/devices/${assignment.deviceId}`} prefetch={false} className="font-mono underline underline-offset-4">
                device {assignment.deviceId}
              </Link>
            ) : (
              <span>group {assignment.group}</span>
            )}
            <Badge variant="outline">priority {assignment.priority}</Badge>
            {editable ? (
              <Button
                size="sm"
                variant="ghost"
                onClick={() => unassignDevicePolicy(policy.id, assignment.id).catch((caught) => toast.error(errorMessage(caught)))}
              >
                Remove
              </Button>
            ) : null}
          </li>
        ))}
      </ul>
      {editable ? (
        <form onSubmit={add} className="flex flex-wrap items-end gap-2">
          <div className="flex w-full flex-col gap-1 sm:w-72">
            <Label htmlFor="assignment-target">Group name or device id</Label>
            <Input
              id="assignment-target"
              value={target}
              onChange={(event) => setTarget(event.target.value)}
              required
              list="assignment-groups"
              aria-describedby="assignment-target-hint"
            />
            <datalist id="assignment-groups">
              {groups?.groups.map((group) => (
                <option key={group.name} value={group.name}>
                  {`${group.devices} ${group.devices === 1 ? "device" : "devices"}`}
                </option>
              ))}
            </datalist>
            <p id="assignment-target-hint" className="text-xs text-muted-foreground">
              A group (pick one) gives the policy to every device in it; a device id (on the device's page) to that device alone.
            </p>
          </div>
          <div className="flex flex-col gap-1">
            <Label htmlFor="assignment-priority">Priority (groups)</Label>
            <Input
              id="assignment-priority"
              type="number"
              min={-1000}
              max={1000}
              value={priority}
              onChange={(event) => setPriority(event.target.value)}
              className="w-28"
            />
          </div>
          <Button type="submit">Assign</Button>
          {error ? (
            <p role="alert" className="text-sm text-destructive">
              {error}
            </p>
          ) : null}
        </form>
      ) : null}
      <p className="text-xs text-muted-foreground">A device assignment beats every group assignment; between groups, the higher priority wins each setting.</p>
    </div>
  );
}

export function PoliciesView() {
  const { canManagePolicies } = usePermissions();
  const { data, error, mutate } = useDevicePolicies();
  const [selectedId, setSelectedId] = useState<string>();
  const [name, setName] = useState("");
  const [createError, setCreateError] = useState<string>();
  const selected = data?.policies.find((policy) => policy.id === selectedId) ?? data?.policies[0];

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    setCreateError(undefined);
    try {
      const policy = await createDevicePolicy({ name: name.trim(), settings: {} });
      setSelectedId(policy.id);
      setName("");
    } catch (caught) {
      setCreateError(errorMessage(caught));
    }
  };

  return (
    <div className="flex flex-col gap-6">
      <PageHeader
        title="Policies"
        description="Desired state for dedicated devices: kiosk mode, restrictions, screen, system updates, required apps. Each change is a new version devices apply and report."
      />
      <ComplianceCounts />
      {error ? <ErrorState error={error} onRetry={() => mutate()} /> : null}
      <div className="flex flex-wrap items-center gap-2">
        {data?.policies.map((policy) => (
          <Button
            key={policy.id}
            variant={policy.id === selected?.id ? "default" : "outline"}
            size="sm"
            onClick={() => setSelectedId(policy.id)}
            data-testid="policy-tab"
          >
            {policy.name} <span className="text-xs opacity-70">v{policy.version}</span>
          </Button>
        ))}
        {canManagePolicies ? (
          <form onSubmit={create} className="flex flex-wrap items-center gap-2">
            <Input
              aria-label="New policy name"
              placeholder="New policy name"
              value={name}
              onChange={(event) => setName(event.target.value)}
              required
              maxLength={100}
              className="w-full sm:w-56"
            />
            <Button type="submit" size="sm">
              Create policy
            </Button>
            {createError ? (
              <p role="alert" className="text-sm text-destructive">
                {createError}
              </p>
            ) : null}
          </form>
        ) : null}
      </div>
      {data && data.policies.length === 0 ? <EmptyState title="No policy yet">Create one, then assign it to a group or a device.</EmptyState> : null}
      {selected ? (
        <>
          <Card>
            <CardHeader>
              {/* A heading, so assistive technology (and the browser suite) can find the policy being edited. */}
              <CardTitle>
                <h2>
                  {selected.name} · version {selected.version}
                </h2>
              </CardTitle>
              <CardDescription>
                Last changed by {selected.updatedBy}, {formatDateTime(selected.updatedAt)}.
              </CardDescription>
            </CardHeader>
            <CardContent>
              <PolicyEditor policy={selected} editable={canManagePolicies} />
            </CardContent>
          </Card>
          <div className="grid gap-6 lg:grid-cols-2">
            <Card>
              <CardHeader>
                <CardTitle>Assignments</CardTitle>
              </CardHeader>
              <CardContent>
                <Assignments policy={selected} editable={canManagePolicies} />
              </CardContent>
            </Card>
            <Card>
              <CardHeader>
                <CardTitle>History</CardTitle>
                <CardDescription>Who changed what; reverting saves the old version as a new one.</CardDescription>
              </CardHeader>
              <CardContent>
                <History policy={selected} editable={canManagePolicies} />
              </CardContent>
            </Card>
          </div>
        </>
      ) : null}
    </div>
  );
}
