"use client";

import { InviteUserRequest, UserRole } from "@mdm/contracts";
import { UserPlusIcon } from "lucide-react";
import { useState } from "react";
import { FormField, fieldErrors } from "@/components/auth/form-field";
import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogFooter, DialogHeader, DialogTitle, DialogTrigger } from "@/components/ui/dialog";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { roleDescriptions } from "@/lib/permissions";
import { inviteUser } from "@/lib/swr/use-users";

export function InviteUserDialog() {
  const [open, setOpen] = useState(false);
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [role, setRole] = useState<UserRole>("viewer");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = InviteUserRequest.safeParse({ email: email.trim(), name: name.trim() || undefined, role });
    if (!body.success) return setErrors(fieldErrors(body.error.issues, { email: "your email", password: "your password", name: "a name", role: "role" }));
    setBusy(true);
    setErrors({});
    try {
      const invited = await inviteUser(body.data);
      if (invited.mail === "recorded") toast.warning(`Invitation for ${body.data.email} recorded, not sent: no mail provider. Find its link on the Mail page.`);
      else toast.success(`Invitation queued for mailing to ${body.data.email}`);
      setEmail("");
      setName("");
      setOpen(false);
    } catch (caught) {
      setErrors({ form: errorMessage(caught) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} onOpenChange={setOpen}>
      <DialogTrigger asChild>
        <Button>
          <UserPlusIcon /> Invite user
        </Button>
      </DialogTrigger>
      <DialogContent>
        <DialogHeader>
          <DialogTitle>Invite a user</DialogTitle>
          <DialogDescription>They get a mail with a link to choose their password.</DialogDescription>
        </DialogHeader>
        <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
          <FormField
            id="invite-email"
            label="Email"
            type="email"
            value={email}
            onChange={(event) => setEmail(event.target.value)}
            error={errors.email}
            autoFocus
          />
          <FormField id="invite-name" label="Name (optional)" value={name} onChange={(event) => setName(event.target.value)} error={errors.name} />
          <div className="flex flex-col gap-2">
            <Label htmlFor="invite-role">Role</Label>
            <Select value={role} onValueChange={(value) => setRole(value as UserRole)}>
              <SelectTrigger id="invite-role">
                <SelectValue />
              </SelectTrigger>
              <SelectContent>
                {UserRole.options.map((option) => (
                  <SelectItem key={option} value={option}>
                    {option}
                  </SelectItem>
                ))}
              </SelectContent>
            </Select>
            <p className="text-xs text-muted-foreground">{roleDescriptions[role]}</p>
          </div>
          {errors.form ? (
            <p role="alert" className="text-sm text-destructive">
              {errors.form}
            </p>
          ) : null}
          <DialogFooter>
            <Button type="button" variant="outline" onClick={() => setOpen(false)}>
              Cancel
            </Button>
            <Button type="submit" disabled={busy}>
              {busy ? "Inviting…" : "Send invitation"}
            </Button>
          </DialogFooter>
        </form>
      </DialogContent>
    </Dialog>
  );
}
