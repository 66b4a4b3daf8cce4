"use client";

import { LoginRequest } from "@mdm/contracts";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { useEffect, useState } from "react";
import { Button } from "@/components/ui/button";
import { errorMessage } from "@/lib/api";
import { safeNextPath } from "@/lib/safe-next-path";
import { signIn } from "@/lib/swr/use-session";
import { useSetupStatus } from "@/lib/swr/use-setup-status";
import { AuthCard } from "./auth-card";
import { FormField, fieldErrors } from "./form-field";

export function SignInForm() {
  const router = useRouter();
  const searchParams = useSearchParams();
  const { data: setup } = useSetupStatus();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (setup?.needed) router.replace("/setup");
  }, [setup, router]);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = LoginRequest.safeParse({ email: email.trim(), password });
    if (!body.success) return setErrors(fieldErrors(body.error.issues, { email: "your email", password: "your password", name: "a name", role: "role" }));
    setBusy(true);
    setErrors({});
    try {
      await signIn(body.data);
      router.replace(safeNextPath(searchParams.get("next"), window.location.origin));
    } catch (error) {
      setErrors({ form: errorMessage(error) });
      setBusy(false);
    }
  };

  return (
    <AuthCard title="Sign in" description="Manage your fleet.">
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <FormField
          id="email"
          label="Email"
          type="email"
          autoComplete="username"
          value={email}
          onChange={(event) => setEmail(event.target.value)}
          error={errors.email}
          autoFocus
        />
        <FormField
          id="password"
          label="Password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          error={errors.password}
        />
        {errors.form ? (
          <p role="alert" className="text-sm text-destructive">
            {errors.form}
          </p>
        ) : null}
        <Button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </Button>
        <Link href="/forgot-password" prefetch={false} className="text-center text-sm text-muted-foreground underline-offset-4 hover:underline">
          Forgot your password?
        </Link>
      </form>
    </AuthCard>
  );
}
