import { type ApiRoute, validationIssues } from "@mdm/contracts";
import type { NextFunction, Request, Response } from "express";
import type { z } from "zod";
import { HttpError } from "./http-error";

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

/** The parsed, typed input of a route, stored by `validate` in `res.locals.input`. */
export type RouteInput<R extends ApiRoute> = {
  body: Infer<R["body"]>;
  query: Infer<R["query"]>;
  params: Infer<R["params"]>;
};

export function inputOf<R extends ApiRoute>(_route: R, res: Response): RouteInput<R> {
  return res.locals.input as RouteInput<R>;
}

function parsePart(schema: z.ZodType | undefined, value: unknown, prefix: string): unknown {
  if (!schema) return undefined;
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError("validation_failed", `Invalid ${prefix}`, validationIssues(result.error, prefix === "body" ? [] : [prefix]));
  return result.data;
}

/** Bodies arrive as raw bytes (see app.ts); this is the one place that decodes them. */
export function parseJsonBody(req: Request): unknown {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!req.is("application/json")) {
    throw new HttpError("unsupported_media_type", "Send the body as Content-Type: application/json");
  }
  const charset = /charset=([^;]+)/i
    .exec(req.get("content-type") ?? "")?.[1]
    ?.trim()
    .replace(/"/g, "")
    .toLowerCase();
  if (charset && charset !== "utf-8" && charset !== "utf8") {
    throw new HttpError("unsupported_media_type", "JSON bodies must be UTF-8");
  }
  if (raw.length === 0) throw new HttpError("invalid_json", "The request body is empty; a JSON value is required");
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new HttpError("invalid_json", "The request body is not valid JSON");
  }
}

/** Validates params, query and body against the route's contract schemas. */
export function validate(route: ApiRoute) {
  return (req: Request, res: Response, next: NextFunction) => {
    res.locals.input = {
      params: parsePart(route.params, req.params, "params"),
      query: parsePart(route.query, req.query ?? {}, "query"),
      body: route.body ? parsePart(route.body, parseJsonBody(req), "body") : undefined,
    };
    next();
  };
}
