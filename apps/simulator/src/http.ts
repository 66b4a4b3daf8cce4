import { ErrorBody } from "@mdm/contracts";
import type { z } from "zod";

/** The API answered with an error body (or something that should have been one). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from `Retry-After` on a 429. */
    readonly retryAfterSeconds?: number,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
  }
}

/** No HTTP answer at all: connection refused, DNS failure, timeout. */
export class ApiUnreachableError extends Error {
  constructor(
    readonly baseUrl: string,
    cause: unknown,
  ) {
    super(`Cannot reach the API at ${baseUrl} (${describeCause(cause)})`, { cause });
    this.name = "ApiUnreachableError";
  }
}

function describeCause(cause: unknown): string {
  // undici hides the socket error (ECONNREFUSED...) behind "fetch failed". Duck-typed: the
  // error may come from another realm (a test sandbox), where instanceof Error fails.
  const inner = (cause as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof inner?.code === "string") return inner.code;
  if (typeof inner?.message === "string") return inner.message;
  const message = (cause as { message?: unknown } | undefined)?.message;
  return typeof message === "string" ? message : String(cause);
}

export type JsonRequest = {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path and query, e.g. `/v1/heartbeat`. */
  path: string;
  headers?: Record<string, string>;
  /** Already serialized, so a signature can cover the exact bytes sent. */
  body?: string;
  timeoutMs?: number;
};

/** Sends a request and parses a 2xx answer with `schema`; anything else throws. */
export async function requestJson<Schema extends z.ZodType>(baseUrl: string, request: JsonRequest, schema: Schema): Promise<z.output<Schema>> {
  const headers: Record<string, string> = { Accept: "application/json", ...request.headers };
  if (request.body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(new URL(request.path, baseUrl), {
      method: request.method,
      headers,
      body: request.body,
      signal: AbortSignal.timeout(request.timeoutMs ?? 15_000),
    });
  } catch (error) {
    throw new ApiUnreachableError(baseUrl, error);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const error = ErrorBody.safeParse(json);
    const retryAfter = Number(res.headers.get("retry-after"));
    if (error.success)
      throw new ApiError(res.status, error.data.error.code, error.data.error.message, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined);
    throw new ApiError(res.status, "unexpected_response", text.slice(0, 200) || res.statusText);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new ApiError(res.status, "contract_mismatch", `${request.method} ${request.path} answered a body the contract refuses: ${parsed.error.message}`);
  }
  return parsed.data;
}
