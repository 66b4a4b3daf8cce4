import { useEffect } from "react";

/**
 * Names the tab "<title> · Keelson" once the page knows what it shows (a device's name, or
 * that it is not there), where the page's metadata could only say "Device". Not restored on
 * leaving: the next page's own <title> replaces this one.
 */
export function useDocumentTitle(title: string | undefined): void {
  useEffect(() => {
    if (title) document.title = `${title} · Keelson`;
  }, [title]);
}
