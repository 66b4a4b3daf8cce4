import type { MailStatus } from "@mdm/contracts";
import { Badge } from "@/components/ui/badge";

const shown: Record<MailStatus, { label: string; variant: "secondary" | "success" | "warning" | "destructive" }> = {
  queued: { label: "queued", variant: "secondary" },
  sent: { label: "sent", variant: "success" },
  recorded: { label: "recorded, not sent", variant: "warning" },
  failed: { label: "failed", variant: "destructive" },
};

/** A mail's outbox status, in words that never call a recorded mail sent. */
export function MailStatusBadge({ status }: { status: MailStatus }) {
  const { label, variant } = shown[status];
  return <Badge variant={variant}>{label}</Badge>;
}
