"use client";

import { PasswordResetConfirmRequest, authRoutes } from "@mdm/contracts";
import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { useEffect, useState } from "react";
import { Button } from "@/components/ui/button";
import { ApiError, callApi, errorMessage } from "@/lib/api";
import { PASSWORD_RULE, isWellFormedLinkToken } from "@/lib/validation";
import { AuthCard } from "./auth-card";
import { FormField, fieldErrors } from "./form-field";

/** Sets a password from a mailed link: a password reset, or accepting an invitation. */
export function ResetPasswordForm() {
  const token = useSearchParams().get("token") ?? "";
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  // The link is checked on load, so a bad one is refused before a password is typed.
  const [link, setLink] = useState<"checking" | "usable" | "refused">("checking");

  useEffect(() => {
    if (!token || !isWellFormedLinkToken(token)) return;
    let current = true;
    setLink("checking");
    callApi(authRoutes.checkPasswordReset, { body: { token } }).then(
      (answer) => current && setLink(answer.valid ? "usable" : "refused"),
      // Only the API's verdict refuses the link; when the check itself failed, the form
      // stays usable and setting the password gives the answer.
      () => current && setLink("usable"),
    );
    return () => {
      current = false;
    };
  }, [token]);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = PasswordResetConfirmRequest.safeParse({ token, password });
    const problems = body.success ? {} : fieldErrors(body.error.issues, { password: "a password" });
    if (password !== confirm) problems.confirm = "The passwords differ.";
    if (!body.success || Object.keys(problems).length > 0) return setErrors(problems);
    setBusy(true);
    setErrors({});
    try {
      await callApi(authRoutes.confirmPasswordReset, { body: body.data });
      setDone(true);
    } catch (caught) {
      const expired = caught instanceof ApiError && ["unauthorized", "not_found", "conflict"].includes(caught.code);
      setErrors({ form: expired ? "This link is invalid, expired or already used. Ask for a new one." : errorMessage(caught) });
    } finally {
      setBusy(false);
    }
  };

  if (!token) {
    return (
      <AuthCard title="Link incomplete" description="Open the link from your mail exactly as it was sent, or ask for a new one.">
        <Link href="/forgot-password" prefetch={false} className="text-sm underline-offset-4 hover:underline">
          Ask for a new link
        </Link>
      </AuthCard>
    );
  }
  // A link cut or altered on its way (mail clients wrap long lines) is refused before the
  // user types a password for nothing.
  if (!isWellFormedLinkToken(token)) {
    return (
      <AuthCard
        title="This link is not valid"
        description="It is incomplete or was changed on its way. Open the link from your mail exactly as it was sent, or ask for a new one."
      >
        <Link href="/forgot-password" prefetch={false} className="text-sm underline-offset-4 hover:underline">
          Ask for a new link
        </Link>
      </AuthCard>
    );
  }
  if (link === "refused") {
    return (
      <AuthCard title="This link can no longer be used" description="Each link works once: a reset link for 30 minutes, an invitation for 7 days.">
        <div className="flex flex-col gap-2">
          <p role="alert" className="text-sm text-destructive">
            This link is invalid, expired or already used.
          </p>
          <Link href="/forgot-password" prefetch={false} className="text-sm underline-offset-4 hover:underline">
            Ask for a new link
          </Link>
        </div>
      </AuthCard>
    );
  }
  if (link === "checking") {
    return (
      <AuthCard title="Choose a password" description="For your dashboard account. The link works once.">
        <p className="text-sm text-muted-foreground">Checking your link…</p>
      </AuthCard>
    );
  }
  if (done) {
    return (
      <AuthCard title="Password set" description="You can sign in with your new password.">
        <Button asChild className="w-full">
          <Link href="/sign-in" prefetch={false}>
            Sign in
          </Link>
        </Button>
      </AuthCard>
    );
  }
  return (
    <AuthCard title="Choose a password" description="For your dashboard account. The link works once.">
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <FormField
          id="password"
          label="New password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          error={errors.password}
          hint={PASSWORD_RULE}
          autoFocus
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
        {errors.form ? (
          <p role="alert" className="text-sm text-destructive">
            {errors.form}{" "}
            <Link href="/forgot-password" prefetch={false} className="underline">
              New link
            </Link>
          </p>
        ) : null}
        <Button type="submit" disabled={busy}>
          {busy ? "Saving…" : "Set password"}
        </Button>
      </form>
    </AuthCard>
  );
}
