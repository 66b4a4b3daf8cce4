"use client";

import type { DevicePolicyView, PolicySettings } from "@mdm/contracts";
import { useEffect, useState } from "react";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Textarea } from "@/components/ui/textarea";
import { toast } from "@/components/ui/sonner";
import { ApiError, errorMessage } from "@/lib/api";
import { humanMessage, labelOfPath } from "@/lib/validation";
import {
  type PolicyDoc,
  type PolicyField,
  codeSpans,
  formatMinute,
  formatRequiredApps,
  parsePackages,
  parseRequiredApps,
  policySections,
  readPath,
  writePath,
} from "@/lib/policy-form";
import { updateDevicePolicy } from "@/lib/swr/use-device-policies";

const SECTIONS = policySections();
const selectClass = "h-9 w-full rounded-md border border-input bg-transparent px-3 text-sm shadow-xs";
const fieldId = (path: string) => `policy-${path.replace(/\./g, "-")}`;

/** A description from the schema, its `names` as code rather than raw backticks. */
function Description({ text, className }: { text: string; className: string }) {
  return (
    <p className={className}>
      {codeSpans(text).map((part, index) =>
        part.code ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: the parts of one fixed text, in order.
          <code key={index} className="rounded bg-muted px-1 font-mono text-[0.9em]">
            {part.text}
          </code>
        ) : (
          part.text
        ),
      )}
    </p>
  );
}

function FieldInput({ field, value, onChange, disabled }: { field: PolicyField; value: unknown; onChange: (value: unknown) => void; disabled: boolean }) {
  const id = fieldId(field.path);
  switch (field.kind) {
    case "boolean":
      return (
        <select
          id={id}
          className={selectClass}
          disabled={disabled}
          value={value === undefined ? "" : String(value)}
          onChange={(event) => onChange(event.target.value === "" ? undefined : event.target.value === "true")}
        >
          <option value="">Not set</option>
          <option value="true">Yes / allowed</option>
          <option value="false">No / forbidden</option>
        </select>
      );
    case "enum":
      return (
        <select
          id={id}
          className={selectClass}
          disabled={disabled}
          value={value === undefined ? "" : String(value)}
          onChange={(event) => onChange(event.target.value || undefined)}
        >
          <option value="">Not set</option>
          {field.options.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
      );
    case "number":
      return (
        <Input
          id={id}
          type="number"
          min={field.min}
          max={field.max}
          disabled={disabled}
          value={value === undefined ? "" : String(value)}
          placeholder="Not set"
          onChange={(event) => onChange(event.target.value === "" ? undefined : Number(event.target.value))}
        />
      );
    case "packages":
      return (
        <Input
          id={id}
          disabled={disabled}
          className="font-mono"
          placeholder="Not set"
          value={Array.isArray(value) ? value.join(", ") : typeof value === "string" ? value : ""}
          onChange={(event) => {
            const packages = parsePackages(event.target.value);
            onChange(field.path.endsWith("homeApp") ? packages?.[0] : packages);
          }}
        />
      );
  }
}

/**
 * Edits a policy's whole document. Each save is a new version (the server refuses, 409, a
 * save based on a version someone else has since replaced); invalid settings come back as
 * 400 with their paths and are shown next to their fields.
 */
export function PolicyEditor({ policy, editable }: { policy: DevicePolicyView; editable: boolean }) {
  const [doc, setDoc] = useState<PolicyDoc>(policy.settings);
  const [name, setName] = useState(policy.name);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string>();
  const [saving, setSaving] = useState(false);
  const [requiredApps, setRequiredApps] = useState(formatRequiredApps(policy.settings.requiredApps));
  const [autoRelaunch, setAutoRelaunch] = useState((policy.settings.autoRelaunch ?? []).join(", "));

  useEffect(() => {
    setDoc(policy.settings);
    setName(policy.name);
    setRequiredApps(formatRequiredApps(policy.settings.requiredApps));
    setAutoRelaunch((policy.settings.autoRelaunch ?? []).join(", "));
    setErrors({});
    setFormError(undefined);
  }, [policy]);

  const set = (path: string, value: unknown) => setDoc((current) => writePath(current, path, value));
  const update = readPath(doc, "systemUpdate") as PolicySettings["systemUpdate"];
  const errorOf = (path: string) => errors[`settings.${path}`] ?? Object.entries(errors).find(([key]) => key.startsWith(`settings.${path}.`))?.[1];

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setErrors({});
    setFormError(undefined);
    let settings = writePath(doc, "requiredApps", parseRequiredApps(requiredApps));
    settings = writePath(settings, "autoRelaunch", parsePackages(autoRelaunch));
    try {
      const saved = await updateDevicePolicy(policy.id, { name: name.trim(), settings: settings as PolicySettings, expectedVersion: policy.version });
      toast.success(saved.version === policy.version ? "Nothing changed" : `Saved as version ${saved.version}`);
    } catch (caught) {
      if (caught instanceof ApiError && caught.details.length > 0) {
        // Each message in words by its field; the line by the save button only counts them.
        setErrors(Object.fromEntries(caught.details.map((issue) => [issue.path, humanMessage(issue.message, labelOfPath(issue.path))])));
        const bySettings = caught.details.filter((issue) => issue.path.startsWith("settings."));
        const others = caught.details
          .filter((issue) => !issue.path.startsWith("settings."))
          .map((issue) => humanMessage(issue.message, labelOfPath(issue.path)));
        const count =
          bySettings.length === 0
            ? []
            : [
                bySettings.length === 1
                  ? "One setting needs a change: see the message by its field."
                  : `${bySettings.length} settings need a change: see the messages by their fields.`,
              ];
        setFormError([...count, ...others].join(" "));
      } else setFormError(errorMessage(caught));
    } finally {
      setSaving(false);
    }
  };

  const disabled = !editable || saving;
  return (
    // noValidate: the browser's own bubbles would stop the save before the API names each
    // invalid setting in words, next to its field.
    <form onSubmit={save} className="flex flex-col gap-6" data-testid="policy-editor" noValidate>
      <div className="flex flex-col gap-2 sm:max-w-sm">
        <Label htmlFor="policy-name">Name</Label>
        <Input id="policy-name" value={name} disabled={disabled} onChange={(event) => setName(event.target.value)} maxLength={100} />
      </div>
      {SECTIONS.map((section) => (
        <fieldset key={section.key} className="flex flex-col gap-3">
          <legend className="font-medium">{section.label}</legend>
          {section.description ? <Description text={section.description} className="text-sm text-muted-foreground" /> : null}
          <div className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
            {section.fields.map((field) => (
              <div key={field.path} className="flex flex-col gap-1">
                <Label htmlFor={fieldId(field.path)}>{field.label}</Label>
                <FieldInput field={field} value={readPath(doc, field.path)} onChange={(value) => set(field.path, value)} disabled={disabled} />
                {field.description ? <Description text={field.description} className="text-xs text-muted-foreground" /> : null}
                {errorOf(field.path) ? (
                  <p role="alert" className="text-xs text-destructive" data-testid={`error-${field.path}`}>
                    {errorOf(field.path)}
                  </p>
                ) : null}
              </div>
            ))}
          </div>
        </fieldset>
      ))}
      <fieldset className="flex flex-col gap-3">
        <legend className="font-medium">System updates</legend>
        <div className="grid gap-4 sm:grid-cols-3">
          <div className="flex flex-col gap-1">
            <Label htmlFor="policy-systemUpdate">Policy</Label>
            <select
              id="policy-systemUpdate"
              className={selectClass}
              disabled={disabled}
              value={update?.type ?? ""}
              onChange={(event) => {
                const type = event.target.value;
                set("systemUpdate", type === "" ? undefined : type === "windowed" ? { type, startMinute: 120, endMinute: 240 } : { type });
              }}
            >
              <option value="">Not set</option>
              <option value="automatic">Automatic</option>
              <option value="windowed">In a daily window</option>
              <option value="postponed">Postponed (30 days)</option>
            </select>
          </div>
          {update?.type === "windowed"
            ? (["startMinute", "endMinute"] as const).map((key) => (
                <div key={key} className="flex flex-col gap-1">
                  <Label htmlFor={`policy-systemUpdate-${key}`}>
                    {key === "startMinute" ? "Window starts" : "Window ends"} (minute of the day: {formatMinute(Math.min(Math.max(update[key], 0), 1439))})
                  </Label>
                  <Input
                    id={`policy-systemUpdate-${key}`}
                    type="number"
                    min={0}
                    max={1439}
                    disabled={disabled}
                    value={String(update[key])}
                    onChange={(event) => set("systemUpdate", { ...update, [key]: Number(event.target.value) })}
                  />
                </div>
              ))
            : null}
        </div>
        {errorOf("systemUpdate") ? (
          <p role="alert" className="text-xs text-destructive">
            {errorOf("systemUpdate")}
          </p>
        ) : null}
      </fieldset>
      <div className="grid gap-4 sm:grid-cols-2">
        <div className="flex flex-col gap-1">
          <Label htmlFor="policy-requiredApps">Required apps (package:minimum version code, one a line)</Label>
          <Textarea
            id="policy-requiredApps"
            className="font-mono"
            rows={3}
            disabled={disabled}
            value={requiredApps}
            onChange={(event) => setRequiredApps(event.target.value)}
            placeholder="com.example.kiosk:210"
          />
          {errorOf("requiredApps") ? (
            <p role="alert" className="text-xs text-destructive">
              {errorOf("requiredApps")}
            </p>
          ) : null}
          {policy.warnings.length > 0 ? (
            <ul className="flex flex-col gap-1 text-xs text-muted-foreground" data-testid="policy-warnings">
              {policy.warnings.map((warning) => (
                <li key={warning.path}>{warning.message}</li>
              ))}
            </ul>
          ) : null}
        </div>
        <div className="flex flex-col gap-1">
          <Label htmlFor="policy-autoRelaunch">Auto-relaunch (apps the server relaunches when they stop)</Label>
          <Input
            id="policy-autoRelaunch"
            className="font-mono"
            disabled={disabled}
            value={autoRelaunch}
            onChange={(event) => setAutoRelaunch(event.target.value)}
            placeholder="com.example.kiosk"
          />
          {errorOf("autoRelaunch") ? (
            <p role="alert" className="text-xs text-destructive">
              {errorOf("autoRelaunch")}
            </p>
          ) : null}
        </div>
      </div>
      {editable ? (
        <div className="flex items-center gap-3">
          <Button type="submit" disabled={saving}>
            {saving ? "Saving…" : "Save as a new version"}
          </Button>
          {formError ? (
            <p role="alert" className="text-sm text-destructive" data-testid="policy-form-error">
              {formError}
            </p>
          ) : null}
        </div>
      ) : null}
    </form>
  );
}
