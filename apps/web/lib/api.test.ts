import { authRoutes } from "@mdm/contracts";
import { ApiError, callApi } from "./api";

// A server that never answers: each request waits until its signal aborts, if it has one.
// AbortSignal.timeout runs 1,000 times faster here, so 30 s takes 30 ms.

const realTimeout = AbortSignal.timeout.bind(AbortSignal);
const sent: string[] = [];

beforeEach(() => {
  sent.length = 0;
  jest.spyOn(AbortSignal, "timeout").mockImplementation((ms: number) => realTimeout(Math.max(1, ms / 1000)));
});

afterEach(() => jest.restoreAllMocks());

function serve(answer: (method: string) => Response | undefined) {
  globalThis.fetch = (async (url: RequestInfo | URL, init?: RequestInit) => {
    sent.push(`${init?.method} ${String(url)}`);
    const response = answer(init?.method ?? "GET");
    if (response) return response;
    return new Promise<Response>((_, reject) => {
      if (!init?.signal) return;
      init.signal.addEventListener("abort", () => reject(init.signal!.reason));
    });
  }) as typeof fetch;
}

/** What the call came to within `ms`: its error's code, or "pending". The timer is cleared either way (left running, it outlived the test). */
async function outcomeWithin(call: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      call.then(
        () => "answered",
        (error: unknown) => (error instanceof ApiError ? error.code : String(error)),
      ),
      new Promise((resolve) => (timer = setTimeout(() => resolve("pending"), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test("a read the server never answers fails as unreachable, after one more try", async () => {
  serve(() => undefined);
  expect(await outcomeWithin(callApi(authRoutes.me), 2_000)).toBe("network_error");
  expect(sent).toEqual(["GET /auth/me", "GET /auth/me"]);
});

test("a read answered 401 whose session refresh never answers fails with the 401", async () => {
  const unauthorized = { error: { code: "unauthorized", message: "Sign in again", requestId: "test" } };
  serve((method) => (method === "GET" ? new Response(JSON.stringify(unauthorized), { status: 401 }) : undefined));
  expect(await outcomeWithin(callApi(authRoutes.me), 2_000)).toBe("unauthorized");
  expect(sent).toEqual(["GET /auth/me", "POST /auth/refresh"]);
});

test("a refusal carries the seconds its Retry-After asks to wait, and none without one", async () => {
  const refused = { error: { code: "rate_limited", message: "Too many requests", requestId: "test" } };
  serve(() => new Response(JSON.stringify(refused), { status: 429, headers: { "Retry-After": "7" } }));
  const limited = await callApi(authRoutes.me).catch((error: unknown) => error);
  expect(limited).toMatchObject({ status: 429, code: "rate_limited", retryAfterSeconds: 7 });

  serve(() => new Response(JSON.stringify(refused), { status: 429 }));
  const bare = await callApi(authRoutes.me).catch((error: unknown) => error);
  expect(bare).toMatchObject({ status: 429, code: "rate_limited", retryAfterSeconds: undefined });
});

test("a proxy's refusal that is not the API's JSON keeps its Retry-After", async () => {
  serve(() => new Response("<html>Too Many Requests</html>", { status: 429, headers: { "Retry-After": "30", "Content-Type": "text/html" } }));
  const refused = await callApi(authRoutes.me).catch((error: unknown) => error);
  expect(refused).toMatchObject({ status: 429, code: "unexpected_response", retryAfterSeconds: 30 });
});
