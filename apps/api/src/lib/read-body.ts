import type { IncomingMessage } from "node:http";
import express, { type RequestHandler } from "express";
import type { Env } from "../config/env";
import { HttpError } from "./http-error";

/**
 * Reads the body as raw bytes (admin signatures cover the exact bytes sent, and `validate`
 * decodes JSON only after a route's guards have authenticated the caller), within
 * HTTP_BODY_TIMEOUT_SECONDS of the headers: a client that trickles its body gets 408
 * and its connection closed then, not at HTTP_REQUEST_TIMEOUT_SECONDS.
 */
export function readRawBody(
  env: Pick<Env, "BODY_LIMIT_BYTES" | "HTTP_BODY_TIMEOUT_SECONDS">,
  accepts: (req: IncomingMessage) => boolean = () => true,
): RequestHandler {
  const read = express.raw({ type: accepts, limit: env.BODY_LIMIT_BYTES });
  const timeoutMs = env.HTTP_BODY_TIMEOUT_SECONDS * 1000;
  return (req, res, next) => {
    if (!accepts(req)) return next();
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      // The rest of the body is not wanted: close the connection once answered instead of reading it.
      res.setHeader("Connection", "close");
      next(new HttpError("request_timeout", `The request body did not arrive within ${env.HTTP_BODY_TIMEOUT_SECONDS} s`));
    }, timeoutMs);
    read(req, res, (error?: unknown) => {
      clearTimeout(timer);
      // Timed out already: the reader's own error (the closed connection) answers nothing more.
      if (settled) return;
      settled = true;
      next(error);
    });
  };
}
