import http from "node:http";

export type WireRequest = {
  method: string;
  /** Path and query exactly as sent (printable ASCII). */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** A connection of its own, closed after the answer (for bodies the server may not read). */
  fresh?: boolean;
};

export type WireResponse = { status: number; headers: http.IncomingHttpHeaders; text: string };

/** Sends one request over a real socket; a dropped connection rejects (ECONNRESET, socket hang up). */
export function sendWire(base: URL, agent: http.Agent, request: WireRequest, timeoutMs = 15_000): Promise<WireResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: request.method,
        path: request.path,
        headers: { ...request.headers, ...(request.body ? { "Content-Length": String(request.body.length) } : {}) },
        agent: request.fresh ? false : agent,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(request.body);
  });
}
