import express from "express";
import request from "supertest";
import { errorHandler } from "./error-handler";
import { createLogger } from "./logger";
import { sharedBudget } from "./rate-limits";

describe("sharedBudget's middleware", () => {
  const appWith = (budget: ReturnType<typeof sharedBudget>, before: express.RequestHandler[] = []) => {
    const app = express();
    app.get("/", ...before, budget.middleware, (_req, res) => {
      if (!res.headersSent) res.json({ served: true });
    });
    app.use(errorHandler(createLogger("error", { silent: true })));
    return app;
  };

  it("counts per key with HTTP and other transports together, and refuses past the budget with the contract's 429", async () => {
    const budget = sharedBudget({ name: "test", perMinute: 2, keyGenerator: () => "device:d1" });
    const app = appWith(budget);
    expect(await budget.consume("device:d1")).toEqual({ allowed: true, retryAfterSeconds: expect.any(Number) });
    const served = await request(app).get("/");
    expect(served.status).toBe(200);
    expect(served.headers.ratelimit).toMatch(/^limit=2, remaining=0, reset=\d+$/);
    const refused = await request(app).get("/");
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("rate_limited");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect((await budget.consume("device:d1")).allowed).toBe(false);
    expect((await budget.consume("device:d2")).allowed).toBe(true);
  });

  it("leaves an answer already sent alone: no headers set after it, nothing thrown", async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on("unhandledRejection", onRejection);
    try {
      const budget = sharedBudget({ name: "test", perMinute: 5, keyGenerator: () => "device:d1" });
      const answeredEarly: express.RequestHandler = (_req, res, next) => {
        res.json({ early: true });
        next();
      };
      const res = await request(appWith(budget, [answeredEarly])).get("/");
      await new Promise((resolve) => setImmediate(resolve));
      expect(res.body).toEqual({ early: true });
      expect(res.headers.ratelimit).toBeUndefined();
      expect(rejections).toEqual([]);
    } finally {
      process.off("unhandledRejection", onRejection);
    }
  });
});
