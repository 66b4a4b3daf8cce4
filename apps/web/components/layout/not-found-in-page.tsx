"use client";

import { NotFoundMessage } from "@/components/states";
import { useDocumentTitle } from "@/lib/hooks/use-document-title";
import { useNoCurrentPage } from "./dashboard-shell";

/**
 * The not-found page, for what only the browser finds missing (a device deleted while its
 * page is open, or asked for once the access cookie had expired): the same words, title and
 * sidebar as the 404 the server answers.
 */
export function NotFoundInPage() {
  useNoCurrentPage();
  useDocumentTitle("Page not found");
  return (
    <div className="flex flex-col items-start gap-3 py-10" data-testid="not-found">
      <NotFoundMessage />
    </div>
  );
}
