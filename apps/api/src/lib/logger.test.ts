import { PassThrough } from "node:stream";
import winston from "winston";
import { createLogger } from "./logger";

function capture(level: string) {
  const logger = createLogger(level);
  logger.clear();
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on("data", (chunk: Buffer) => lines.push(JSON.parse(chunk.toString())));
  logger.add(new winston.transports.Stream({ stream }));
  return { logger, lines };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("logger", () => {
  it("writes lines at or above its level as JSON with secrets redacted", async () => {
    const { logger, lines } = capture("info");
    logger.info("device registered", { deviceId: "d1", token: "s3cret", nested: { password: "p" } });
    logger.debug("heartbeat", { deviceId: "d1" });
    await flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "info", message: "device registered", deviceId: "d1", token: "[redacted]", nested: { password: "[redacted]" } });
    expect(typeof lines[0]?.timestamp).toBe("string");
  });

  it("drops a call below its level before winston builds its line, on child loggers too", async () => {
    const { logger, lines } = capture("warn");
    const write = jest.spyOn(logger, "write");
    logger.debug("heartbeat", { deviceId: "d1" });
    logger.info("request");
    logger.child({ requestId: "r1" }).info("request");
    expect(write).not.toHaveBeenCalled();
    logger.child({ requestId: "r2" }).warn("slow", { ms: 900 });
    logger.error("boom");
    await flush();
    expect(write).toHaveBeenCalledTimes(2);
    expect(lines).toMatchObject([
      { level: "warn", message: "slow", requestId: "r2", ms: 900 },
      { level: "error", message: "boom" },
    ]);
  });

  it("does not format a line below its level: none of its fields is read", async () => {
    const { logger, lines } = capture("error");
    let reads = 0;
    // Winston copies the top level of the fields itself; formatting is what walks into them.
    const meta = {
      details: {
        get requestId() {
          reads++;
          return "r1";
        },
      },
    };
    logger.info("request", meta);
    logger.warn("request", meta);
    await flush();
    expect(lines).toHaveLength(0);
    expect(reads).toBe(0);
  });

  it("follows a level changed at run time", async () => {
    const { logger, lines } = capture("error");
    logger.level = "debug";
    logger.debug("heartbeat", { deviceId: "d1" });
    await flush();
    expect(lines).toEqual([expect.objectContaining({ level: "debug", message: "heartbeat" })]);
  });
});
