"use client";

import { type AppRelease, type CatalogueApp, ROLLOUT_STEPS, servesAppDownloads } from "@mdm/contracts";
import { useRef, useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import { WarningNotice } from "@/components/warning-notice";
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
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { toast } from "@/components/ui/sonner";
import { cn } from "@/lib/utils";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { errorMessage } from "@/lib/api";
import { formatBytes, formatDateTime } from "@/lib/format";
import { type ReleaseAction, changeRelease, createRelease, deleteApp, deleteAppVersion, uploadApk, useApps } from "@/lib/swr/use-apps";

const statusVariant = { active: "success", paused: "warning", completed: "secondary", rolled_back: "destructive" } as const satisfies Record<
  AppRelease["status"],
  string
>;
const selectClass = "h-9 rounded-md border border-input bg-background px-2 text-sm";

function UploadButton() {
  const input = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <input
        ref={input}
        type="file"
        accept=".apk,application/vnd.android.package-archive"
        className="sr-only"
        aria-label="APK file"
        onChange={async (event) => {
          const file = event.target.files?.[0];
          event.target.value = "";
          if (!file) return;
          setBusy(true);
          try {
            const { version, created } = await uploadApk(file);
            toast.success(
              created ? `Added ${version.packageName} ${version.versionName ?? ""} (${version.versionCode})` : "This APK was already in the catalogue",
            );
          } catch (error) {
            toast.error(errorMessage(error));
          } finally {
            setBusy(false);
          }
        }}
      />
      <Button onClick={() => input.current?.click()} disabled={busy}>
        {busy ? "Uploading…" : "Upload APK"}
      </Button>
    </>
  );
}

const RELEASES_OFF_NOTICE = "releases-off";

/** Why releases cannot start or move: said once at the top, before anyone fills in a release. */
function ReleasesOffNotice({ publicApiUrl }: { publicApiUrl: string | null }) {
  return (
    <WarningNotice id={RELEASES_OFF_NOTICE} testId={RELEASES_OFF_NOTICE} title="Releases need the API's public https:// address">
      Install commands carry a download URL on <code className="font-mono">PUBLIC_API_URL</code>, which is{" "}
      {publicApiUrl ? <span className="font-mono">{publicApiUrl}</span> : "not set"}. Set it on the API (in <code className="font-mono">.env</code> or its
      environment) to the https:// address phones reach it at, e.g. <span className="font-mono">https://mdm.example.com</span>, and restart it. Until then you
      can upload and delete APKs, but not start, advance or roll back a release.
    </WarningNotice>
  );
}

function ReleaseForm({ app, releasesOff }: { app: CatalogueApp; releasesOff: boolean }) {
  const [versionCode, setVersionCode] = useState(String(app.versions[0]?.versionCode ?? ""));
  const [group, setGroup] = useState("");
  const [percent, setPercent] = useState("5");
  const [autoAdvance, setAutoAdvance] = useState(false);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="flex flex-wrap items-end gap-3"
      aria-label={`Release ${app.packageName}`}
      onSubmit={async (event) => {
        event.preventDefault();
        setBusy(true);
        try {
          await createRelease(app.packageName, {
            versionCode: Number(versionCode),
            target: group.trim() ? { group: group.trim() } : { all: true },
            percent: Number(percent),
            autoAdvance,
            maxFailurePercent: 5,
          });
          toast.success("Release started");
        } catch (error) {
          toast.error(errorMessage(error));
        } finally {
          setBusy(false);
        }
      }}
    >
      <div className="grid gap-1">
        <Label htmlFor={`version-${app.packageName}`}>Version</Label>
        <select id={`version-${app.packageName}`} className={selectClass} value={versionCode} onChange={(event) => setVersionCode(event.target.value)}>
          {app.versions.map((version) => (
            <option key={version.id} value={version.versionCode}>
              {version.versionName ?? "?"} ({version.versionCode})
            </option>
          ))}
        </select>
      </div>
      <div className="grid gap-1">
        <Label htmlFor={`group-${app.packageName}`}>Group (empty: whole fleet)</Label>
        <Input id={`group-${app.packageName}`} value={group} onChange={(event) => setGroup(event.target.value)} placeholder="store-42" className="w-44" />
      </div>
      <div className="grid gap-1">
        <Label htmlFor={`percent-${app.packageName}`}>Start at</Label>
        <select id={`percent-${app.packageName}`} className={selectClass} value={percent} onChange={(event) => setPercent(event.target.value)}>
          {ROLLOUT_STEPS.map((step) => (
            <option key={step} value={step}>
              {step}%
            </option>
          ))}
        </select>
      </div>
      <label className="flex h-9 items-center gap-2 text-sm">
        <input type="checkbox" checked={autoAdvance} onChange={(event) => setAutoAdvance(event.target.checked)} />
        Advance by itself
      </label>
      <Button type="submit" disabled={busy || !versionCode || releasesOff} aria-describedby={releasesOff ? RELEASES_OFF_NOTICE : undefined}>
        Start release
      </Button>
    </form>
  );
}

// Columns a phone does without, so a version keeps its Delete on screen.
const WIDE_ONLY = "hidden md:table-cell";

function Progress({ release }: { release: AppRelease }) {
  const { targeted, sent, installed, pending, failed, replaced } = release.progress;
  const share = (count: number) => `${targeted === 0 ? 0 : (count * 100) / targeted}%`;
  return (
    <div className="grid gap-1 whitespace-normal md:min-w-48">
      <div className="flex h-2 overflow-hidden rounded bg-muted" aria-hidden>
        <div className="bg-success" style={{ width: share(installed) }} />
        <div className="bg-warning" style={{ width: share(pending) }} />
        <div className="bg-destructive" style={{ width: share(failed) }} />
      </div>
      <span className="text-xs text-muted-foreground" data-testid="release-progress">
        {installed} installed · {pending} pending · {failed} failed{replaced > 0 ? ` · ${replaced} replaced` : ""} · {sent} of {targeted} sent
      </span>
    </div>
  );
}

function ReleaseButton({ release, action, label, disabledBy }: { release: AppRelease; action: ReleaseAction; label: string; disabledBy?: string }) {
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    try {
      await changeRelease(release.id, action);
      toast.success(`Release: ${label.toLowerCase()}`);
    } catch (error) {
      toast.error(errorMessage(error));
    } finally {
      setBusy(false);
    }
  };
  if (action !== "rollback") {
    return (
      <Button variant="outline" size="sm" disabled={busy || disabledBy !== undefined} aria-describedby={disabledBy} onClick={run}>
        {label}
      </Button>
    );
  }
  return (
    <AlertDialog>
      <AlertDialogTrigger asChild>
        <Button variant="outline" size="sm" disabled={busy || disabledBy !== undefined} aria-describedby={disabledBy}>
          {label}
        </Button>
      </AlertDialogTrigger>
      <AlertDialogContent>
        <AlertDialogHeader>
          <AlertDialogTitle>Roll back version {release.versionCode}?</AlertDialogTitle>
          <AlertDialogDescription>
            {release.rollbackDevices > 0
              ? `${release.rollbackDevices} of the ${release.progress.sent} devices this release reached go back to the version each ran before it (most to version ${release.previousVersionCode}).`
              : `None of the ${release.progress.sent} devices this release reached has an earlier version to go back to.`}{" "}
            Devices whose install failed, or that had no earlier version, stay as they are; installs not yet delivered are cancelled.
          </AlertDialogDescription>
        </AlertDialogHeader>
        <AlertDialogFooter>
          <AlertDialogCancel>Keep it</AlertDialogCancel>
          <AlertDialogAction onClick={run}>Roll back</AlertDialogAction>
        </AlertDialogFooter>
      </AlertDialogContent>
    </AlertDialog>
  );
}

/** A delete button asking first; the server says (409) when what it deletes is still in use. */
function DeleteButton({ label, title, description, onConfirm }: { label: string; title: string; description: string; onConfirm: () => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  return (
    <AlertDialog>
      <AlertDialogTrigger asChild>
        <Button variant="outline" size="sm" disabled={busy}>
          {label}
        </Button>
      </AlertDialogTrigger>
      <AlertDialogContent>
        <AlertDialogHeader>
          <AlertDialogTitle>{title}</AlertDialogTitle>
          <AlertDialogDescription>{description}</AlertDialogDescription>
        </AlertDialogHeader>
        <AlertDialogFooter>
          <AlertDialogCancel>Keep it</AlertDialogCancel>
          <AlertDialogAction
            onClick={async () => {
              setBusy(true);
              try {
                await onConfirm();
                toast.success("Deleted");
              } catch (error) {
                toast.error(errorMessage(error));
              } finally {
                setBusy(false);
              }
            }}
          >
            Delete
          </AlertDialogAction>
        </AlertDialogFooter>
      </AlertDialogContent>
    </AlertDialog>
  );
}

/** Advancing and rolling back send install commands: off (described by the notice) while releases are. */
function ReleaseActions({ release, releasesOff }: { release: AppRelease; releasesOff: boolean }) {
  const sending = releasesOff ? RELEASES_OFF_NOTICE : undefined;
  return (
    <>
      {release.status === "active" && release.percent < 100 ? <ReleaseButton release={release} action="advance" label="Advance" disabledBy={sending} /> : null}
      {release.status === "active" ? <ReleaseButton release={release} action="pause" label="Pause" /> : null}
      {release.status === "paused" ? <ReleaseButton release={release} action="resume" label="Resume" /> : null}
      {release.status !== "rolled_back" ? <ReleaseButton release={release} action="rollback" label="Roll back" disabledBy={sending} /> : null}
    </>
  );
}

function ReleaseStatus({ release }: { release: AppRelease }) {
  return <Badge variant={statusVariant[release.status]}>{release.status.replace("_", " ")}</Badge>;
}

function ReleasesTable({ app, canManage, releasesOff }: { app: CatalogueApp; canManage: boolean; releasesOff: boolean }) {
  if (app.releases.length === 0) return <p className="text-sm text-muted-foreground">No release yet.</p>;
  return (
    <>
      {/* A phone gets one card per release: version, progress, status and actions do not fit a row of 390 px. */}
      <ul className="divide-y rounded-lg border md:hidden" aria-label={`Releases of ${app.packageName}`}>
        {app.releases.map((release) => (
          <li key={release.id} className="flex flex-col gap-2 p-3 text-sm" data-testid="release-card">
            <div className="flex flex-wrap items-center justify-between gap-2">
              <span className="font-medium">
                {release.versionName ?? "?"} ({release.versionCode})
              </span>
              <ReleaseStatus release={release} />
            </div>
            <span className="text-xs text-muted-foreground">
              {"group" in release.target ? `group ${release.target.group}` : "whole fleet"} · {release.percent}%{release.autoAdvance ? " (auto)" : ""}
            </span>
            <Progress release={release} />
            {canManage ? (
              <div className="flex flex-wrap gap-1 empty:hidden">
                <ReleaseActions release={release} releasesOff={releasesOff} />
              </div>
            ) : null}
          </li>
        ))}
      </ul>
      <div className="hidden md:block">
        <ReleaseRows app={app} canManage={canManage} releasesOff={releasesOff} />
      </div>
    </>
  );
}

function ReleaseRows({ app, canManage, releasesOff }: { app: CatalogueApp; canManage: boolean; releasesOff: boolean }) {
  return (
    <Table aria-label={`Releases of ${app.packageName}`}>
      <TableHeader>
        <TableRow>
          <TableHead>Version</TableHead>
          <TableHead>Target</TableHead>
          <TableHead>Rollout</TableHead>
          <TableHead>Progress</TableHead>
          <TableHead>Status</TableHead>
          {canManage ? <TableHead className="text-right">Actions</TableHead> : null}
        </TableRow>
      </TableHeader>
      <TableBody>
        {app.releases.map((release) => (
          <TableRow key={release.id}>
            <TableCell>
              {release.versionName ?? "?"} ({release.versionCode})
            </TableCell>
            <TableCell>{"group" in release.target ? `group ${release.target.group}` : "whole fleet"}</TableCell>
            <TableCell>
              {release.percent}%{release.autoAdvance ? " (auto)" : ""}
            </TableCell>
            <TableCell>
              <Progress release={release} />
            </TableCell>
            <TableCell>
              <ReleaseStatus release={release} />
            </TableCell>
            {canManage ? (
              <TableCell className="text-right">
                <div className="flex flex-wrap justify-end gap-1">
                  <ReleaseActions release={release} releasesOff={releasesOff} />
                </div>
              </TableCell>
            ) : null}
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function AppCard({ app, canManage, releasesOff }: { app: CatalogueApp; canManage: boolean; releasesOff: boolean }) {
  return (
    <Card data-testid={`app-${app.packageName}`}>
      <CardHeader>
        <div className="flex items-center justify-between gap-2">
          <CardTitle className="font-mono text-base">{app.packageName}</CardTitle>
          {canManage ? (
            <DeleteButton
              label="Delete app"
              title={`Delete ${app.packageName}?`}
              description="Every version, its APK file and every release of this app are deleted. Devices keep what they installed."
              onConfirm={() => deleteApp(app.packageName)}
            />
          ) : null}
        </div>
        <p className="text-xs text-muted-foreground">
          Signing certificate SHA-256 <span className="font-mono break-all">{app.certSha256}</span>
        </p>
      </CardHeader>
      <CardContent className="grid gap-4">
        <Table aria-label={`Versions of ${app.packageName}`}>
          <TableHeader>
            <TableRow>
              <TableHead>Version</TableHead>
              <TableHead>Code</TableHead>
              <TableHead className={WIDE_ONLY}>Size</TableHead>
              <TableHead className={WIDE_ONLY}>SHA-256</TableHead>
              <TableHead className={WIDE_ONLY}>Uploaded</TableHead>
              {canManage ? <TableHead className="text-right">Actions</TableHead> : null}
            </TableRow>
          </TableHeader>
          <TableBody>
            {app.versions.map((version) => (
              <TableRow key={version.id}>
                <TableCell>{version.versionName ?? "?"}</TableCell>
                <TableCell>{version.versionCode}</TableCell>
                <TableCell className={WIDE_ONLY}>{formatBytes(version.sizeBytes)}</TableCell>
                <TableCell className={cn(WIDE_ONLY, "font-mono text-xs")} title={version.sha256}>
                  {version.sha256.slice(0, 16)}…
                </TableCell>
                <TableCell className={WIDE_ONLY}>{formatDateTime(version.createdAt)}</TableCell>
                {canManage ? (
                  <TableCell className="text-right">
                    <DeleteButton
                      label="Delete"
                      title={`Delete version ${version.versionCode} of ${app.packageName}?`}
                      description="The version and its APK file are deleted; install commands already sent for it fail to download. Releases keep their history."
                      onConfirm={() => deleteAppVersion(app.packageName, version.versionCode)}
                    />
                  </TableCell>
                ) : null}
              </TableRow>
            ))}
          </TableBody>
        </Table>
        {canManage ? <ReleaseForm app={app} releasesOff={releasesOff} /> : null}
        <ReleasesTable app={app} canManage={canManage} releasesOff={releasesOff} />
      </CardContent>
    </Card>
  );
}

/** The app catalogue: upload APKs, roll versions out a share at a time, follow and steer each release. */
export function CatalogueView() {
  const { data, error, isLoading, mutate } = useApps();
  const { canManageCatalogue } = usePermissions();
  const releasesOff = data !== undefined && !servesAppDownloads(data.publicApiUrl);
  return (
    <div className="grid gap-6">
      <PageHeader
        title="Catalogue"
        description="APKs devices install from this server, and their staged releases (5% → 25% → 100%)."
        actions={canManageCatalogue ? <UploadButton /> : null}
      />
      {error ? <ErrorState error={error} onRetry={() => mutate()} /> : null}
      {releasesOff && canManageCatalogue ? <ReleasesOffNotice publicApiUrl={data.publicApiUrl} /> : null}
      {!error && !isLoading && data?.apps.length === 0 ? (
        <EmptyState title="No app yet">Upload an APK: its package name, version and signing certificate are read from the file.</EmptyState>
      ) : null}
      {data?.apps.map((app) => (
        <AppCard key={app.packageName} app={app} canManage={canManageCatalogue} releasesOff={releasesOff} />
      ))}
    </div>
  );
}
