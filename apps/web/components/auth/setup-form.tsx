"use client";

import { SetupRequest, authRoutes } from "@mdm/contracts";
import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { mutate } from "swr";
import { Button } from "@/components/ui/button";
import { Skeleton } from "@/components/ui/skeleton";
import { callApi, errorMessage } from "@/lib/api";
import { sessionKey } from "@/lib/swr/use-session";
import { PASSWORD_RULE } from "@/lib/validation";
import { setupStatusKey, useSetupStatus } from "@/lib/swr/use-setup-status";
import { AuthCard } from "./auth-card";
import { FormField, fieldErrors } from "./form-field";

/** First run: create the first admin. Shown only while the server says it has none. */
export function SetupForm() {
  const router = useRouter();
  const { data: setup, error } = useSetupStatus();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [setupToken, setSetupToken] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (setup && !setup.needed) router.replace("/sign-in");
  }, [setup, router]);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = SetupRequest.safeParse({ name: name.trim() || undefined, email: email.trim(), password, setupToken: setupToken.trim() || undefined });
    // Every problem of the form at once, not one per attempt.
    const problems = body.success
      ? {}
      : fieldErrors(body.error.issues, { name: "your name", email: "your email", password: "a password", setupToken: "the setup token" });
    if (password !== confirm) problems.confirm = "The passwords differ.";
    if (setup?.tokenRequired && !setupToken.trim()) problems.setupToken = "Enter the setup token from the API's log (the line “no user yet”).";
    if (!body.success || Object.keys(problems).length > 0) return setErrors(problems);
    setBusy(true);
    setErrors({});
    try {
      const session = await callApi(authRoutes.setup, { body: body.data });
      await mutate(sessionKey, session.user, { revalidate: false });
      await mutate(setupStatusKey, { needed: false, tokenRequired: false }, { revalidate: false });
      router.replace("/");
    } catch (caught) {
      setErrors({ form: errorMessage(caught) });
      setBusy(false);
    }
  };

  if (error) return <p className="text-destructive">{errorMessage(error)}</p>;
  if (!setup?.needed) return <Skeleton className="h-96 w-full" />;
  return (
    <AuthCard title="Welcome" description="Create the first admin account. You can invite the rest of your team afterwards.">
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <FormField
          id="name"
          label="Your name"
          autoComplete="name"
          value={name}
          onChange={(event) => setName(event.target.value)}
          error={errors.name}
          autoFocus
        />
        <FormField
          id="email"
          label="Email"
          type="email"
          autoComplete="username"
          value={email}
          onChange={(event) => setEmail(event.target.value)}
          error={errors.email}
        />
        <FormField
          id="password"
          label="Password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          error={errors.password}
          hint={PASSWORD_RULE}
        />
        <FormField
          id="confirm"
          label="Repeat the password"
          type="password"
          autoComplete="new-password"
          value={confirm}
          onChange={(event) => setConfirm(event.target.value)}
          error={errors.confirm}
        />
        {setup.tokenRequired ? (
          <FormField
            id="setupToken"
            label="Setup token (printed in the API's log at start)"
            autoComplete="off"
            value={setupToken}
            onChange={(event) => setSetupToken(event.target.value)}
            error={errors.setupToken}
          />
        ) : null}
        {errors.form ? (
          <p role="alert" className="text-sm text-destructive">
            {errors.form}
          </p>
        ) : null}
        <Button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create admin account"}
        </Button>
      </form>
    </AuthCard>
  );
}
