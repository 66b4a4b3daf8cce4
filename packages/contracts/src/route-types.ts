import type { z } from "zod";
import type { ErrorCode } from "./errors";

/**
 * How a route authenticates: see the README's "Authentication" section. `admin` routes
 * take a signed admin request (the bootstrap key: full rights; an API key: its role must
 * reach `minRole`) or the session of a user of at least `minRole` (admin when unnamed); `session` routes a signed-in user (of at least
 * `minRole`, when the route names one). `metrics`: the server's METRICS_TOKEN as a bearer
 * token, or, without one, a direct call from the server's own host.
 */
export type RouteAuth = "none" | "device" | "admin" | "legacy" | "session" | "metrics";

export type RouteResponse = { description: string; schema?: z.ZodType; contentType?: string };

export type ApiRoute = {
  method: "get" | "post" | "patch" | "delete";
  /** OpenAPI-style path: `/admin/commands/{requestId}`. */
  path: string;
  summary: string;
  description?: string;
  tag: "Devices" | "Admin" | "System" | "Legacy" | "Auth";
  auth: RouteAuth;
  /** For `admin` and `session` routes: the least user role allowed (viewer < operator < admin). */
  minRole?: "viewer" | "operator" | "admin";
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** A multipart/form-data upload instead of a JSON body: the name of its one file field. */
  upload?: { field: string; description: string };
  responses: Record<number, RouteResponse>;
  /**
   * `false` for the routes no caller may be throttled out of: the load balancer's health
   * check, and signing out. Every other route answers 429 past its limit.
   */
  rateLimited?: false;
  /** Errors particular to this route; the ones every route of its kind can give are added. */
  errors?: ErrorCode[];
};
