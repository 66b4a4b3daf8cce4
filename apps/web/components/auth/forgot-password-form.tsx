"use client";

import { type PasswordResetAccepted, PasswordResetRequest, authRoutes } from "@mdm/contracts";
import Link from "next/link";
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { callApi, errorMessage } from "@/lib/api";
import { AuthCard } from "./auth-card";
import { FormField, fieldErrors } from "./form-field";

export function ForgotPasswordForm() {
  const [email, setEmail] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [accepted, setAccepted] = useState<PasswordResetAccepted>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = PasswordResetRequest.safeParse({ email: email.trim() });
    if (!body.success) return setErrors(fieldErrors(body.error.issues, { email: "your email", password: "your password", name: "a name", role: "role" }));
    setBusy(true);
    setErrors({});
    try {
      setAccepted(await callApi(authRoutes.requestPasswordReset, { body: body.data }));
    } catch (caught) {
      setErrors({ form: errorMessage(caught) });
    } finally {
      setBusy(false);
    }
  };

  if (accepted) {
    const description =
      accepted.mail === "recorded"
        ? `If ${email.trim()} has an account, a link to choose a new password was recorded, not sent: this server sends no mail. An admin can find it on the Mail page. It works once.`
        : `If ${email.trim()} has an account, a link to choose a new password is on its way. It works once.`;
    return (
      <AuthCard title={accepted.mail === "recorded" ? "Link recorded, not sent" : "Check your mail"} description={description}>
        <Link href="/sign-in" prefetch={false} className="text-sm underline-offset-4 hover:underline">
          Back to sign in
        </Link>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Forgot your password?" description="We will mail you a link to choose a new one.">
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
        {errors.form ? (
          <p role="alert" className="text-sm text-destructive">
            {errors.form}
          </p>
        ) : null}
        <Button type="submit" disabled={busy}>
          {busy ? "Sending…" : "Send the link"}
        </Button>
        <Link href="/sign-in" prefetch={false} className="text-center text-sm text-muted-foreground underline-offset-4 hover:underline">
          Back to sign in
        </Link>
      </form>
    </AuthCard>
  );
}
