import type { ErrorBody, ErrorCode } from "@mdm/contracts";
import type { NextFunction, Request, Response } from "express";
import { isDatabaseUnavailable } from "../db/client";
import { HttpError } from "./http-error";
import type { Logger } from "./logger";

// body-parser signals its failures by `type`; each maps to a contract error.
const BODY_PARSER_ERRORS: Record<string, [ErrorCode, string]> = {
  "entity.too.large": ["payload_too_large", "The request body is too large"],
  "encoding.unsupported": ["unsupported_media_type", "Unsupported Content-Encoding"],
  "charset.unsupported": ["unsupported_media_type", "Unsupported charset"],
  "request.aborted": ["invalid_json", "The request body was not received completely"],
  "request.size.invalid": ["invalid_json", "The request body does not match its Content-Length"],
  "entity.parse.failed": ["invalid_json", "The request body is not valid JSON"],
};

// Clients add their own jitter and backoff on top.
export const DATABASE_RETRY_AFTER_SECONDS = 2;

/** What a request that found the database down or saturated answers: retry shortly. */
export function databaseUnavailable(): HttpError {
  return new HttpError("service_unavailable", "The database is unavailable; retry shortly", undefined, { "Retry-After": String(DATABASE_RETRY_AFTER_SECONDS) });
}

/**
 * What a database error says, however it arrived: Prisma's code (P...), the driver adapter's
 * kind, and PostgreSQL's SQLSTATE (from the adapter, or pg's own error).
 */
function databaseErrorOf(error: unknown): { code?: unknown; kind?: unknown; sqlState?: unknown } {
  if (typeof error !== "object" || error === null) return {};
  const { code, meta } = error as { code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } } };
  const cause = meta?.driverAdapterError?.cause;
  return { code, kind: cause?.kind, sqlState: cause?.kind === "postgres" ? cause.code : code };
}

/** A foreign key refused the write, through Prisma's models, its raw queries or pg itself. */
function isForeignKeyViolation(error: unknown): boolean {
  const { code, kind, sqlState } = databaseErrorOf(error);
  return code === "P2003" || kind === "ForeignKeyConstraintViolation" || sqlState === "23503";
}

/** PostgreSQL gave up a transaction for another one's sake (deadlock, serialization failure). */
function isTransactionConflict(error: unknown): boolean {
  const { code, kind, sqlState } = databaseErrorOf(error);
  return code === "P2034" || kind === "TransactionWriteConflict" || sqlState === "40P01" || sqlState === "40001";
}

/** The contract's error for an error a service threw, if it is one the client can act on. */
export function toHttpError(error: unknown): HttpError | undefined {
  if (error instanceof HttpError) return error;
  if (isDatabaseUnavailable(error)) return databaseUnavailable();
  // The router decodes path parameters before any route runs: `/admin/devices/%zz` is the
  // client's malformed input, not our failure.
  if (error instanceof URIError && (error as { status?: unknown }).status === 400) {
    return new HttpError("validation_failed", "A path parameter is not valid percent-encoding", [{ path: "params", message: "Not valid percent-encoding" }]);
  }
  if (isForeignKeyViolation(error)) {
    // What the request refers to was deleted between its checks and its write (a version
    // deleted while a release of it is created, a policy while it is assigned).
    return new HttpError("conflict", "Something this request refers to was removed at the same moment; reload and try again");
  }
  if (isTransactionConflict(error)) {
    // Nothing of the request was kept: the same request again, once the other one is done, is safe.
    return new HttpError("conflict", "This request met a concurrent change and was not applied; reload and try again");
  }
  const type = (error as { type?: unknown })?.type;
  if (typeof type === "string" && BODY_PARSER_ERRORS[type]) {
    const [code, message] = BODY_PARSER_ERRORS[type];
    return new HttpError(code, message);
  }
  return undefined;
}

function hasBody(req: Request): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

export function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const known = toHttpError(error);
    const httpError = known ?? new HttpError("internal_error", "Something went wrong on our side");
    if (known && !(error instanceof HttpError) && known.status === 503) {
      // One line per request: an outage is visible, without a stack per refused heartbeat.
      logger.warn("database unavailable", {
        requestId: res.locals.requestId,
        method: req.method,
        path: req.path,
        message: error instanceof Error ? error.message.trim().split("\n").pop() : String(error),
      });
    }
    if (!known) {
      const failure = error instanceof Error ? { name: error.name, message: error.message } : { message: String(error) };
      logger.error("unhandled error", { requestId: res.locals.requestId, method: req.method, path: req.path, ...failure });
      logger.debug("stack", { requestId: res.locals.requestId, stack: error instanceof Error ? error.stack : undefined });
    }
    if (res.headersSent) return;
    for (const [name, value] of Object.entries(httpError.headers ?? {})) res.setHeader(name, value);
    // Refused before its body was read (an upload answered 401, a client over its share): the
    // rest is not wanted, and Node would otherwise keep reading it, for as long as its
    // request timeout, which must allow an APK upload's.
    if (hasBody(req) && !req.complete) res.setHeader("Connection", "close");
    const body: ErrorBody = {
      error: {
        code: httpError.code,
        message: httpError.message,
        ...(httpError.details ? { details: httpError.details } : {}),
        requestId: res.locals.requestId ?? "unknown",
      },
    };
    res.status(httpError.status).json(body);
  };
}
