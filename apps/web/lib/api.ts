import { type ApiRoute, CSRF_COOKIE, CSRF_HEADER, ErrorBody, type ErrorCode, type ValidationIssue, authRoutes } from "@mdm/contracts";
import type { z } from "zod";
import { humanMessage, labelOfPath } from "./validation";

// A typed client over the contracts' route tables: a route's params, query and body types
// come from its schemas, and every response is parsed with the schema the API answers with.

type SuccessStatus = 200 | 201 | 202 | 204;

type SuccessSchema<R extends ApiRoute> = {
  [S in keyof R["responses"]]: S extends SuccessStatus ? (R["responses"][S] extends { schema: infer T extends z.ZodType } ? T : never) : never;
}[keyof R["responses"]];

/** What a route answers with on success (`undefined` for 204). */
export type ApiResult<R extends ApiRoute> = [SuccessSchema<R>] extends [never] ? undefined : z.output<SuccessSchema<R>>;

type ParamsInput<R> = R extends { params: infer P extends z.ZodType } ? { params: z.input<P> } : { params?: undefined };
type QueryInput<R> = R extends { query: infer Q extends z.ZodType } ? { query?: Partial<z.input<Q>> } : { query?: undefined };
type BodyInput<R> = R extends { body: infer B extends z.ZodType } ? { body: z.input<B> } : { body?: undefined };

/** What a route takes: path params, query and body, typed by the route's own schemas. */
export type ApiInput<R extends ApiRoute> = ParamsInput<R> & QueryInput<R> & BodyInput<R>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | "network_error" | "unexpected_response",
    message: string,
    readonly details: ValidationIssue[] = [],
    readonly requestId?: string,
    /** Seconds the server asked to wait before trying again (`Retry-After`, with 429 and 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

function readCookie(name: string): string | undefined {
  if (typeof document === "undefined") return undefined;
  const prefix = `${name}=`;
  const found = document.cookie.split("; ").find((cookie) => cookie.startsWith(prefix));
  return found ? decodeURIComponent(found.slice(prefix.length)) : undefined;
}

/** The request path of a route with its params filled in and its query appended. */
export function apiPath<R extends ApiRoute>(route: R, input: Pick<ApiInput<R>, "params" | "query"> = {} as ApiInput<R>): string {
  const params = (input.params ?? {}) as Record<string, string>;
  const path = route.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params[name] ?? "")));
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries((input.query ?? {}) as Record<string, unknown>)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const query = search.toString();
  return query ? `${path}?${query}` : path;
}

type SessionExpiredListener = () => void;
const sessionExpiredListeners = new Set<SessionExpiredListener>();

/** Called when the API refuses the session and a refresh could not renew it. */
export function onSessionExpired(listener: SessionExpiredListener): () => void {
  sessionExpiredListeners.add(listener);
  return () => sessionExpiredListeners.delete(listener);
}

// Routes for which a 401 means "wrong credentials or token", not "session expired".
const NO_REFRESH_PATHS = new Set<string>(
  [authRoutes.login, authRoutes.setup, authRoutes.refreshSession, authRoutes.logout, authRoutes.confirmPasswordReset].map((route) => route.path),
);

let refreshing: Promise<boolean> | undefined;

/** Renews the access cookie with the refresh cookie; concurrent callers share one attempt. */
function refreshSession(): Promise<boolean> {
  // Bounded like a read: every request that met a 401 waits on it.
  refreshing ??= send(authRoutes.refreshSession.method, authRoutes.refreshSession.path, undefined, REQUEST_TIMEOUT_MS)
    .then((response) => {
      discard(response);
      return response.ok;
    })
    .catch(() => false)
    .finally(() => {
      refreshing = undefined;
    });
  return refreshing;
}

/**
 * Lets go of a response whose body is not wanted (a 401 before the retry, a 5xx before the
 * second try, the refresh's answer): the browser holds an unread body's request open.
 */
function discard(response: Response): void {
  response.body?.cancel().catch(() => {});
}

/** Sends one request; a read (and a `timeoutMs` given) fails after that long without an answer. */
async function send(method: ApiRoute["method"], path: string, body: unknown, timeoutMs = method === "get" ? REQUEST_TIMEOUT_MS : undefined): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "get") {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf) headers[CSRF_HEADER] = csrf;
  }
  return fetch(path, {
    method: method.toUpperCase(),
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
  });
}

async function errorFrom(response: Response): Promise<ApiError> {
  const parsed = ErrorBody.safeParse(await response.json().catch(() => undefined));
  // A proxy's refusal (HTML) still says when to come back.
  if (!parsed.success)
    return new ApiError(response.status, "unexpected_response", `The server answered ${response.status}`, [], undefined, retryAfterOf(response));
  const { code, message, details, requestId } = parsed.data.error;
  return new ApiError(response.status, code, message, details ?? [], requestId, retryAfterOf(response));
}

/** `Retry-After` in seconds (the form the API sends); undefined when absent or an HTTP date. */
function retryAfterOf(response: Response): number | undefined {
  const value = response.headers.get("retry-after");
  const seconds = value === null || value.trim() === "" ? Number.NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

function successSchema(route: ApiRoute, status: number): z.ZodType | undefined {
  return route.responses[status]?.schema;
}

// A proxy's dropped keep-alive socket or a restarting API fails one request, not the next:
// reads, which are idempotent, are tried once more after this pause. Writes never are.
const READ_RETRY_DELAY_MS = 300;
// A read that hangs would keep what it refreshes (and its live updates) waiting. Writes
// have no deadline: one that timed out here may still have been made.
const REQUEST_TIMEOUT_MS = 30_000;
const RETRIED_STATUSES = new Set([500, 502, 503, 504]);

/** Sends a request; a GET that fails on the network or with a 5xx is sent once more. */
async function sendOnce(method: ApiRoute["method"], path: string, body: unknown): Promise<Response> {
  if (method !== "get") return send(method, path, body);
  const first = await send(method, path, body).catch(() => undefined);
  if (first && !RETRIED_STATUSES.has(first.status)) return first;
  await new Promise((resolve) => setTimeout(resolve, READ_RETRY_DELAY_MS));
  return send(method, path, body).then(
    (second) => {
      if (first) discard(first);
      return second;
    },
    (error: unknown) => {
      if (first) return first;
      throw error;
    },
  );
}

/** Calls a route and returns its response parsed with the route's schema; throws ApiError. */
export async function callApi<R extends ApiRoute>(route: R, input: ApiInput<R> = {} as ApiInput<R>): Promise<ApiResult<R>> {
  const path = apiPath(route, input);
  let response: Response;
  try {
    response = await sendOnce(route.method, path, input.body);
    if (response.status === 401 && !NO_REFRESH_PATHS.has(route.path) && (await refreshSession())) {
      discard(response);
      response = await sendOnce(route.method, path, input.body);
    }
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the server. Check your connection.");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !NO_REFRESH_PATHS.has(route.path)) for (const listener of sessionExpiredListeners) listener();
    throw error;
  }
  const schema = successSchema(route, response.status);
  if (!schema) return undefined as ApiResult<R>;
  const parsed = schema.safeParse(await response.json().catch(() => undefined));
  if (!parsed.success) {
    throw new ApiError(response.status, "unexpected_response", `Unexpected response from ${route.method.toUpperCase()} ${route.path}`);
  }
  return parsed.data as ApiResult<R>;
}

/**
 * Uploads a file to a multipart route (the app catalogue's APKs) as field `field`, and
 * parses the answer with the route's schema; throws ApiError.
 */
export async function uploadToApi<R extends ApiRoute>(route: R, field: string, file: File): Promise<ApiResult<R>> {
  const form = new FormData();
  form.append(field, file);
  const headers: Record<string, string> = { Accept: "application/json" };
  const csrf = readCookie(CSRF_COOKIE);
  if (csrf) headers[CSRF_HEADER] = csrf;
  let response: Response;
  try {
    response = await fetch(route.path, { method: route.method.toUpperCase(), headers, body: form, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the server. Check your connection.");
  }
  if (!response.ok) throw await errorFrom(response);
  const schema = successSchema(route, response.status);
  const parsed = schema?.safeParse(await response.json().catch(() => undefined));
  if (!parsed?.success) throw new ApiError(response.status, "unexpected_response", `Unexpected response from ${route.method.toUpperCase()} ${route.path}`);
  return parsed.data as ApiResult<R>;
}

/** A user-facing sentence for any error a call can throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.code === "validation_failed" && error.details.length > 0) {
      // One sentence per distinct problem: ten bad entries of one list say it once.
      return [...new Set(error.details.map((issue) => humanMessage(issue.message, labelOfPath(issue.path))))].join(" ");
    }
    if (error.code === "forbidden") return "Your role does not allow this.";
    if (error.code === "rate_limited") return "Too many requests. Wait a moment and try again.";
    return error.message;
  }
  return error instanceof Error ? error.message : "Something went wrong.";
}
