"use client";

import type { ApiRoute } from "@mdm/contracts";
import { DownloadIcon } from "lucide-react";
import { Button } from "@/components/ui/button";
import { apiPath } from "@/lib/api";

/**
 * CSV and JSON-lines downloads of an export route with the page's filters. Plain links: a
 * GET with the session cookie needs no CSRF token, and the browser streams the download
 * to disk instead of holding it in the page.
 */
export function ExportButtons({ route, query = {}, label }: { route: ApiRoute; query?: Record<string, string | number | undefined>; label: string }) {
  return (
    <div className="flex gap-2">
      {(["csv", "jsonl"] as const).map((format) => (
        <Button key={format} asChild variant="outline" size="sm">
          <a
            href={apiPath(route, { query: { ...query, format } } as never)}
            download
            data-testid={`export-${format}`}
            aria-label={`Export ${label} as ${format.toUpperCase()}`}
          >
            <DownloadIcon aria-hidden /> {format === "csv" ? "CSV" : "JSON lines"}
          </a>
        </Button>
      ))}
    </div>
  );
}
