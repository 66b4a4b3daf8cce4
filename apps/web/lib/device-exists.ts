import { apiRoutes } from "@mdm/contracts";
import { apiPath } from "@/lib/api";
import { apiUrl } from "@/lib/config";

/**
 * A device page's id: /devices/<id>. Undefined for any other address; null for a device
 * address whose escapes do not decode, which can name no device.
 */
export function devicePageId(pathname: string): string | null | undefined {
  const match = /^\/devices\/([^/]+)\/?$/.exec(pathname);
  if (!match) return undefined;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return null;
  }
}

/**
 * Whether the API says it has no such device, asked with the visitor's own session. Only
 * the API's 404, or its 400 for an id that is no UUID, means missing: signed out, the API
 * slow or out of reach, the page renders and the browser says what happened.
 */
export async function deviceIsMissing(deviceId: string, visitor: Headers): Promise<boolean> {
  try {
    const response = await fetch(`${apiUrl}${apiPath(apiRoutes.getDevice, { params: { deviceId } })}`, {
      // server.js wrote X-Forwarded-For from the visitor's socket: the API's limits count them, not this server.
      headers: { accept: "application/json", cookie: visitor.get("cookie") ?? "", "x-forwarded-for": visitor.get("x-forwarded-for") ?? "" },
      cache: "no-store",
      signal: AbortSignal.timeout(3000),
    });
    await response.body?.cancel();
    return response.status === 404 || response.status === 400;
  } catch {
    return false;
  }
}
