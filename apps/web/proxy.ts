import { CSRF_COOKIE, SESSION_COOKIE } from "@mdm/contracts";
import { type NextRequest, NextResponse } from "next/server";
import { contentSecurityPolicy, isMetricsPath } from "./lib/content-security";
import { deviceIsMissing, devicePageId } from "./lib/device-exists";

// Every page is behind sign-in but these; requests the rewrites send to the API, and the icon, are not pages.
const PUBLIC_PAGE = /^\/(sign-in|forgot-password|reset-password|setup)(\/|$)/;
const NOT_A_PAGE = /^\/(api|admin|auth|_next|__nextjs[^/]*)(\/|$)|^\/icon\.svg$/;

// Runs before the /api, /admin and /auth rewrites to the API (next.config.ts).
export async function proxy(request: NextRequest) {
  // Metrics are for the API's own host or a scraper holding METRICS_TOKEN, never for
  // whoever can reach the dashboard.
  if (isMetricsPath(request.nextUrl.pathname)) return new NextResponse(null, { status: 404 });

  // Nobody signed in (neither the access cookie nor the CSRF cookie, which lives as long as
  // the refresh token): the sign-in page at once, rather than a dashboard whose first
  // requests all answer 401 in the console.
  const { pathname, search } = request.nextUrl;
  const needsSession = !PUBLIC_PAGE.test(pathname) && !NOT_A_PAGE.test(pathname);
  if (needsSession && !request.cookies.has(SESSION_COOKIE) && !request.cookies.has(CSRF_COOKIE)) {
    const signIn = new URL("/sign-in", request.url);
    if (pathname !== "/") signIn.searchParams.set("next", `${pathname}${search}`);
    return NextResponse.redirect(signIn);
  }

  // Device ids are lowercase UUIDs, and the page's live updates find it by that spelling.
  const deviceId = devicePageId(pathname);
  if (deviceId && deviceId !== deviceId.toLowerCase()) {
    return NextResponse.redirect(new URL(`/devices/${encodeURIComponent(deviceId.toLowerCase())}${search}`, request.url), 308);
  }
  // An unknown device's page is a 404 like any unknown address. Asked here, before the page
  // renders: a page's own notFound() is answered 200 once the dashboard's frame has begun to
  // stream. (Its access cookie expired, the visitor's session cannot be asked here, since the
  // refresh cookie only goes to /auth: the page then shows the same not-found in the browser.)
  const missing = deviceId === null || (deviceId !== undefined && (await deviceIsMissing(deviceId, request.headers)));
  const rewriteTo = missing ? new URL("/devices/missing/404", request.url) : undefined;

  const nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const policy = contentSecurityPolicy(nonce, {
    development: process.env.NODE_ENV === "development",
    https: request.nextUrl.protocol === "https:" || request.headers.get("x-forwarded-proto") === "https",
  });
  // Next.js reads the nonce from the request's policy and puts it on its scripts.
  const headers = new Headers(request.headers);
  headers.set("x-nonce", nonce);
  headers.set("Content-Security-Policy", policy);
  // No page matches the rewritten address, so Next.js answers it with the not-found page and 404.
  const response = rewriteTo ? NextResponse.rewrite(rewriteTo, { request: { headers } }) : NextResponse.next({ request: { headers } });
  response.headers.set("Content-Security-Policy", policy);
  return response;
}

export const config = {
  matcher: ["/((?!_next/static|_next/image|favicon.ico).*)"],
};
