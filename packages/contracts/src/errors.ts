import { z } from "zod";
import { unknownFieldsMessage } from "./messages";

export const ErrorCode = z.enum([
  "validation_failed",
  "invalid_json",
  "invalid_apk",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "request_timeout",
  "rate_limited",
  "gone",
  "range_not_satisfiable",
  "internal_error",
  "service_unavailable",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const errorStatus: Record<ErrorCode, number> = {
  validation_failed: 400,
  invalid_json: 400,
  invalid_apk: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  request_timeout: 408,
  rate_limited: 429,
  gone: 410,
  range_not_satisfiable: 416,
  internal_error: 500,
  service_unavailable: 503,
};

export const ValidationIssue = z.object({
  path: z
    .string()
    .describe(
      "Dotted path of the offending field, e.g. `battery.level` (an unknown field: its own path, e.g. `settings.kiosk.foo`); empty for the whole body.",
    ),
  message: z.string(),
});
export type ValidationIssue = z.infer<typeof ValidationIssue>;

/**
 * A failed parse as `details`: each issue at its dotted path under `prefix`. zod reports an
 * object's unknown fields as one issue at the object (`kiosk`); here each is its own issue at
 * its own path (`kiosk.foo`), so a client can point at the field to remove.
 */
export function validationIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): ValidationIssue[] {
  const pathOf = (path: readonly PropertyKey[]) => [...prefix, ...path].map(String).join(".");
  return error.issues.flatMap((issue) => {
    if (issue.code !== "unrecognized_keys" || issue.keys.length < 2) {
      const path = issue.code === "unrecognized_keys" ? [...issue.path, ...issue.keys] : issue.path;
      return [{ path: pathOf(path), message: issue.message }];
    }
    return issue.keys.map((key) => ({ path: pathOf([...issue.path, key]), message: unknownFieldsMessage([key]) }));
  });
}

export const ErrorBody = z.object({
  error: z.object({
    code: ErrorCode,
    message: z.string(),
    details: z.array(ValidationIssue).optional(),
    requestId: z.string(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;
