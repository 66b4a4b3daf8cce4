import type { ApiRoute } from "@mdm/contracts";
import type { RequestHandler, Router } from "express";
import { validate } from "./validate";

/** `/admin/commands/{requestId}` → `/admin/commands/:requestId` */
export function toExpressPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ":$1");
}

/**
 * Registers a contract route: `guards` (rate limits, authentication) run before its input
 * is even parsed, then the input is validated, then `afterValidation`, then the handler.
 */
export function mount(
  router: Router,
  route: ApiRoute,
  handler: RequestHandler,
  options: { guards?: RequestHandler[]; afterValidation?: RequestHandler[] } = {},
): void {
  router[route.method](toExpressPath(route.path), ...(options.guards ?? []), validate(route), ...(options.afterValidation ?? []), handler);
}
