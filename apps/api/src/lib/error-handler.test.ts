import express from "express";
import request from "supertest";
import { isDatabaseUnavailable } from "../db/client";
import { errorHandler } from "./error-handler";
import { createLogger } from "./logger";

// The shapes below are the ones Prisma 7 with @prisma/adapter-pg produced against a real
// PostgreSQL stopped under it (see src/faults/postgres-outage.test.ts for the live run).
const adapterError = (code: string, cause: Record<string, unknown>) =>
  Object.assign(new Error("Invalid `prisma.$queryRaw()` invocation: Can't reach database server"), {
    code,
    meta: { driverAdapterError: { name: "DriverAdapterError", cause } },
  });

const outages: Array<[string, unknown]> = [
  ["connection refused (model query)", adapterError("P1001", { kind: "DatabaseNotReachable", host: "127.0.0.1", port: 5432 })],
  ["connection refused (raw query)", adapterError("P2010", { kind: "DatabaseNotReachable", host: "127.0.0.1", port: 5432 })],
  ["connection reset", adapterError("P2010", { kind: "ConnectionClosed" })],
  [
    "server shutting down",
    adapterError("P2010", { kind: "postgres", code: "57P01", severity: "FATAL", message: "terminating connection due to administrator command" }),
  ],
  ["server starting up", adapterError("P2010", { kind: "postgres", code: "57P03", severity: "FATAL", message: "the database system is starting up" })],
  ["too many connections", adapterError("P2010", { kind: "TooManyConnections", cause: "sorry, too many clients already" })],
  ["pooled connection dropped (unwrapped pg error)", new Error("Connection terminated unexpectedly")],
  ["no connection within the timeout", new Error("timeout exceeded when trying to connect")],
  ["transaction slot timeout", Object.assign(new Error("Transaction API error"), { code: "P2028" })],
];

describe("a database outage seen by a request", () => {
  const app = express();
  let next: unknown;
  app.get("/", () => {
    throw next;
  });
  app.use(errorHandler(createLogger("error", { silent: true })));

  it.each(outages)("%s answers 503 service_unavailable with Retry-After", async (_name, error) => {
    next = error;
    expect(isDatabaseUnavailable(error)).toBe(true);
    const res = await request(app).get("/");
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toMatch(/^[1-9]\d*$/);
    expect(res.body.error.code).toBe("service_unavailable");
  });

  it("a query that is wrong (not an outage) stays a 500", async () => {
    next = adapterError("P2010", { kind: "postgres", code: "42P01", severity: "ERROR", message: 'relation "x" does not exist' });
    expect(isDatabaseUnavailable(next)).toBe(false);
    const res = await request(app).get("/");
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe("internal_error");
  });
});
