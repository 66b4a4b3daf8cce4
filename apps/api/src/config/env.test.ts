import { DEV_ADMIN_KEY, parseEnv } from "./env";

describe("parseEnv", () => {
  it("gives a development setup that runs with nothing set", () => {
    const env = parseEnv({});
    expect(env).toMatchObject({ NODE_ENV: "development", PORT: 8000, ADMIN_KEY: DEV_ADMIN_KEY });
    expect(env.DATABASE_URL).toBeUndefined();
  });

  it("refuses to start production on default or short secrets, naming each", () => {
    expect(() => parseEnv({ NODE_ENV: "production" })).toThrow(/ADMIN_KEY[\s\S]*HMAC_SECRET[\s\S]*JWT_SECRET/);
    expect(() => parseEnv({ NODE_ENV: "production", ADMIN_KEY: "short", HMAC_SECRET: "x".repeat(40) })).toThrow(/ADMIN_KEY/);
  });

  it("accepts production with strong secrets", () => {
    const env = parseEnv({ NODE_ENV: "production", ADMIN_KEY: "k".repeat(40), HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40), PORT: "9000" });
    expect(env.PORT).toBe(9000);
  });

  it("refuses a short METRICS_TOKEN in production", () => {
    const strong = { NODE_ENV: "production", ADMIN_KEY: "k".repeat(40), HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40) };
    expect(() => parseEnv({ ...strong, METRICS_TOKEN: "short" })).toThrow(/METRICS_TOKEN/);
    expect(parseEnv({ ...strong, METRICS_TOKEN: "m".repeat(32) }).METRICS_TOKEN).toBe("m".repeat(32));
  });

  it("refuses a headers timeout longer than the request timeout, which Node would refuse at start", () => {
    expect(() => parseEnv({ HTTP_HEADERS_TIMEOUT_SECONDS: "40", HTTP_REQUEST_TIMEOUT_SECONDS: "30" })).toThrow(/HTTP_HEADERS_TIMEOUT_SECONDS/);
  });

  it("never echoes a secret value in its error", () => {
    const secret = "short-secret-value";
    try {
      parseEnv({ NODE_ENV: "production", ADMIN_KEY: secret });
      throw new Error("expected a failure");
    } catch (error) {
      expect(String(error)).not.toContain(secret);
    }
  });
});

it("treats empty variables as unset", () => {
  const env = parseEnv({ ADMIN_KEY: "", DATABASE_URL: "", PORT: "" });
  expect(env.ADMIN_KEY).toBe(DEV_ADMIN_KEY);
  expect(env.DATABASE_URL).toBeUndefined();
  expect(env.PORT).toBe(8000);
});
