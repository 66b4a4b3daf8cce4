import type { ApiRoute } from "@mdm/contracts";
import type { RequestHandler, Router } from "express";
import type { Guards } from "./guards";
import { validate } from "./validate";

/** `/admin/commands/{requestId}` → `/admin/commands/:requestId` */
export function toExpressPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ":$1");
}

/**
 * Registers a contract route: `guards` (rate limits, authentication) run before its input
 * is even parsed, then the input is validated, then `afterValidation`, then the handler.
 * Given the Guards themselves, an admin route takes the chain its contract entry implies
 * (its `minRole`), so what the OpenAPI document says is what is enforced.
 */
export function mount(
  router: Router,
  route: ApiRoute,
  handler: RequestHandler,
  options: { guards?: RequestHandler[] | Guards; afterValidation?: RequestHandler[] } = {},
): void {
  const guards = Array.isArray(options.guards) ? options.guards : options.guards ? guardsFor(options.guards, route) : [];
  router[route.method](toExpressPath(route.path), ...guards, validate(route), ...(options.afterValidation ?? []), handler);
}

function guardsFor(guards: Guards, route: ApiRoute): RequestHandler[] {
  switch (route.auth) {
    case "admin":
      return guards.admin(route);
    case "device":
      return guards.device;
    case "session":
      return guards.session(route.minRole);
    case "none":
      // Health checks and logout: a burst from one address must not lock them out.
      return route.rateLimited === false ? [] : guards.public;
    case "metrics":
      return guards.metrics;
    case "legacy":
      throw new Error(`${route.path}: legacy routes bring their own guards`);
  }
}
