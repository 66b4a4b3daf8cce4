import express from "express";
import request from "supertest";
import { createLogger } from "./logger";
import { createMetrics } from "./metrics";
import { requestContext } from "./request-context";

function appLoggingAt(level: string) {
  const logger = createLogger(level, { silent: true });
  const info = jest.spyOn(logger, "info");
  const app = express();
  app.use(requestContext(logger, createMetrics()));
  app.get("/ping", (_req, res) => {
    res.json({ ok: true });
  });
  return { app, logger, info };
}

// The line is written when the response has finished, which may come after the client has read it.
const finished = () => new Promise((resolve) => setImmediate(resolve));

describe("request context", () => {
  it("logs one line per request at info", async () => {
    const { app, info } = appLoggingAt("info");
    const res = await request(app).get("/ping");
    await finished();
    expect(res.headers["x-request-id"]).toEqual(expect.any(String));
    expect(info).toHaveBeenCalledTimes(1);
    expect(info).toHaveBeenCalledWith("request", expect.objectContaining({ requestId: res.headers["x-request-id"], route: "/ping", status: 200 }));
  });

  it("builds no line below its level, and follows a level changed at run time", async () => {
    const { app, logger, info } = appLoggingAt("warn");
    await request(app).get("/ping");
    await finished();
    expect(info).not.toHaveBeenCalled();
    logger.level = "info";
    await request(app).get("/ping");
    await finished();
    expect(info).toHaveBeenCalledTimes(1);
  });
});
