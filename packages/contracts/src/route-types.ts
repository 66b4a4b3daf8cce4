import type { z } from "zod";
import type { ErrorCode } from "./errors";

/** How a route authenticates: see the README's "Authentication" section. */
export type RouteAuth = "none" | "device" | "admin" | "legacy";

export type RouteResponse = { description: string; schema?: z.ZodType; contentType?: string };

export type ApiRoute = {
  method: "get" | "post" | "patch" | "delete";
  /** OpenAPI-style path: `/admin/commands/{requestId}`. */
  path: string;
  summary: string;
  description?: string;
  tag: "Devices" | "Admin" | "System" | "Legacy";
  auth: RouteAuth;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, RouteResponse>;
  /** Errors particular to this route; the ones every route of its kind can give are added. */
  errors?: ErrorCode[];
};
