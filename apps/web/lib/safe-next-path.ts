/**
 * Where to go after signing in: `next` if it stays on the dashboard's origin, else "/".
 *
 * Resolved the way the browser will resolve it, so tricks that only look like paths
 * (`/\evil.example`, `/\t/evil.example`) are judged by where they really lead. The
 * result is a path with a single leading slash: `/.//evil.example` resolves to the path
 * `//evil.example`, which a router would read as another host.
 */
export function safeNextPath(next: string | null, origin: string): string {
  if (!next) return "/";
  let url: URL;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  if (url.origin !== new URL(origin).origin) return "/";
  return `${url.pathname.replace(/^\/+/, "/")}${url.search}${url.hash}`;
}
