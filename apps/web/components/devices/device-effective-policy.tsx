"use client";

import type { ComplianceStatus } from "@mdm/contracts";
import Link from "next/link";
import { ErrorState } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime } from "@/lib/format";
import { useEffectivePolicy } from "@/lib/swr/use-device-policies";

const STATUS: Record<ComplianceStatus, { label: string; variant: "success" | "warning" | "destructive" | "secondary" }> = {
  compliant: { label: "Compliant", variant: "success" },
  pending: { label: "Pending", variant: "warning" },
  failed: { label: "Failed", variant: "destructive" },
  none: { label: "No policy", variant: "secondary" },
};

/** The device's effective policy, where each setting comes from, and whether the device applied it. */
export function DeviceEffectivePolicy({ deviceId }: { deviceId: string }) {
  const { data, error } = useEffectivePolicy(deviceId);
  if (error) return <ErrorState error={error} />;
  if (!data) return null;
  const status = STATUS[data.compliance.status];
  return (
    <Card data-testid="device-effective-policy">
      <CardHeader>
        <CardTitle className="flex items-center gap-2">
          Policy{" "}
          <Badge variant={status.variant} data-testid="device-compliance">
            {status.label}
          </Badge>
        </CardTitle>
        <CardDescription>
          {data.compliance.reportedAt ? `Last reported ${formatDateTime(data.compliance.reportedAt)}.` : "The device has not reported applying a policy yet."}{" "}
          {data.compliance.status === "pending" ? "It gets the current one with its next heartbeat, or at once over its socket." : null}
        </CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-3">
        {data.compliance.failures.length > 0 ? (
          <ul className="flex flex-col gap-1 text-sm text-destructive" data-testid="device-policy-failures">
            {data.compliance.failures.map((failure) => (
              <li key={failure.setting}>
                <span className="font-mono">{failure.setting}</span>: {failure.reason}
              </li>
            ))}
          </ul>
        ) : null}
        {data.compliance.missingApps.length > 0 ? (
          <ul className="flex flex-col gap-1 text-sm text-destructive" data-testid="device-missing-apps">
            {data.compliance.missingApps.map((app) => (
              <li key={app.packageName}>
                <span className="font-mono">{app.packageName}</span>: {app.reason}
              </li>
            ))}
          </ul>
        ) : null}
        {data.warnings.length > 0 ? (
          <ul className="flex flex-col gap-1 text-sm text-muted-foreground" data-testid="device-policy-warnings">
            {data.warnings.map((warning) => (
              <li key={warning.path}>{warning.message}</li>
            ))}
          </ul>
        ) : null}
        {data.sources.length === 0 ? (
          <p className="text-sm text-muted-foreground">No policy applies to this device.</p>
        ) : (
          <Table>
            <TableHeader>
              <TableRow>
                <TableHead>Setting</TableHead>
                <TableHead>Value</TableHead>
                <TableHead>From</TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {data.sources.map((source) => (
                <TableRow key={source.path} data-testid={`source-${source.path}`}>
                  <TableCell className="font-mono text-xs">{source.path}</TableCell>
                  <TableCell className="font-mono text-xs">{JSON.stringify(source.value)}</TableCell>
                  <TableCell className="text-xs">
                    <Link href="/policies" prefetch={false} className="underline underline-offset-4">
                      {source.policyName} v{source.policyVersion}
                    </Link>{" "}
                    ({source.assignment.kind === "device" ? "this device" : `group ${source.assignment.group}, priority ${source.assignment.priority}`})
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </CardContent>
    </Card>
  );
}
