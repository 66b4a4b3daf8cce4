import http from "node:http";
import type { AddressInfo } from "node:net";
import { relayUpload } from "../upload-relay.js";

// server.js streams APK uploads to the API itself (Next.js's rewrite stops at 10 MB).

function serve(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((done) => server.close(() => done())) }),
    ),
  );
}

it("streams the body to the API's same path and its answer back", async () => {
  const api = await serve((req, res) => {
    let size = 0;
    req.on("data", (chunk: Buffer) => (size += chunk.length));
    req.on("end", () => res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ path: req.url, size, host: req.headers.host })));
  });
  const relay = await serve((req, res) => relayUpload(req, res, api.url));
  try {
    const body = Buffer.alloc(12 * 1024 * 1024, 1);
    const answer = await fetch(`${relay.url}/admin/apps?sha256=abc`, { method: "POST", body });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toEqual({ path: "/admin/apps?sha256=abc", size: body.length, host: new URL(api.url).host });
  } finally {
    await relay.close();
    await api.close();
  }
});

it("answers 503 with the contract's error when the API cannot be reached", async () => {
  const gone = await serve(() => undefined);
  await gone.close();
  const relay = await serve((req, res) => relayUpload(req, res, gone.url));
  try {
    const answer = await fetch(`${relay.url}/admin/apps`, { method: "POST", body: "x" });
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBe("2");
    expect((await answer.json()).error).toMatchObject({ code: "service_unavailable" });
  } finally {
    await relay.close();
  }
});
