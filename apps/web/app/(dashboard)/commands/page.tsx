import type { Metadata } from "next";
import { Suspense } from "react";
import { CommandsView } from "@/components/commands/commands-view";

export const metadata: Metadata = { title: "Commands" };

export default function CommandsPage() {
  return (
    <Suspense>
      <CommandsView />
    </Suspense>
  );
}
