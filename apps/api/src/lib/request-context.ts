import { randomUUID } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

/** Gives every request an id (the client's X-Request-Id when sane) and logs one line when it ends. */
export function requestContext(logger: Logger, metrics: Metrics) {
  return (req: Request, res: Response, next: NextFunction) => {
    const incoming = req.get("x-request-id");
    const requestId = incoming && CLIENT_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader("X-Request-Id", requestId);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = req.route ? `${req.baseUrl}${req.route.path}` : "unmatched";
      metrics.requestDuration.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
      // Below the level (LOG_LEVEL=warn or error) each request still built its line (the
      // client address through the proxy list, winston's stream up to the format that drops
      // it): about 2% of a heartbeat's CPU in a profile.
      if (!logger.isLevelEnabled("info")) return;
      logger.info("request", {
        requestId,
        method: req.method,
        route,
        status: res.statusCode,
        latencyMs: Math.round(seconds * 1e4) / 10,
        ip: req.ip,
        deviceId: res.locals.device?.id,
      });
    });
    next();
  };
}
