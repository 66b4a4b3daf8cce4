import type { Metadata } from "next";
import { MailOutboxView } from "@/components/mail/mail-outbox-view";

export const metadata: Metadata = { title: "Mail" };

export default function MailPage() {
  return <MailOutboxView />;
}
