import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DEV_SECRETS_FILE, parseEnv } from "./env";

const tempDataDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "mdm-env-"));

describe("parseEnv", () => {
  it("gives a development setup that runs with nothing set: loopback only, on secrets generated for this installation", () => {
    const dataDir = tempDataDir();
    const env = parseEnv({ DATA_DIR: dataDir });
    expect(env).toMatchObject({
      NODE_ENV: "development",
      PORT: 8000,
      HOST: "127.0.0.1",
      generatedSecrets: ["ADMIN_KEY", "HMAC_SECRET", "JWT_SECRET", "COMMAND_MASTER_KEY"],
    });
    expect(env.DATABASE_URL).toBeUndefined();
    for (const secret of [env.ADMIN_KEY, env.HMAC_SECRET, env.JWT_SECRET, env.COMMAND_MASTER_KEY]) expect(secret.length).toBeGreaterThanOrEqual(32);

    // Kept for the next start (admin scripts and the simulator read them too), readable by the owner only.
    const file = path.join(dataDir, DEV_SECRETS_FILE);
    expect(JSON.parse(fs.readFileSync(file, "utf8"))).toEqual({
      ADMIN_KEY: env.ADMIN_KEY,
      HMAC_SECRET: env.HMAC_SECRET,
      JWT_SECRET: env.JWT_SECRET,
      COMMAND_MASTER_KEY: env.COMMAND_MASTER_KEY,
    });
    expect(fs.statSync(file).mode & 0o077).toBe(0);
    expect(parseEnv({ DATA_DIR: dataDir })).toMatchObject({
      ADMIN_KEY: env.ADMIN_KEY,
      HMAC_SECRET: env.HMAC_SECRET,
      JWT_SECRET: env.JWT_SECRET,
      COMMAND_MASTER_KEY: env.COMMAND_MASTER_KEY,
    });

    // Another installation gets other secrets: nothing shared is published.
    expect(parseEnv({ DATA_DIR: tempDataDir() }).HMAC_SECRET).not.toBe(env.HMAC_SECRET);
  });

  it.each(["0.0.0.0", "::", "10.0.0.5", "mdm.example.com"])("refuses to listen on %s without every secret set, whatever NODE_ENV says", (host) => {
    const dataDir = tempDataDir();
    expect(() => parseEnv({ HOST: host, DATA_DIR: dataDir })).toThrow(
      /HOST: .* reachable from other machines, so ADMIN_KEY, HMAC_SECRET, JWT_SECRET, COMMAND_MASTER_KEY must be set/,
    );
    expect(() => parseEnv({ HOST: host, NODE_ENV: "test", ADMIN_KEY: "k".repeat(40), HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40) })).toThrow(
      /so COMMAND_MASTER_KEY must be set/,
    );
  });

  it("refuses short secrets on an address others can reach, even outside production", () => {
    const short = { ADMIN_KEY: "a", HMAC_SECRET: "b".repeat(40), JWT_SECRET: "c".repeat(40), COMMAND_MASTER_KEY: "d".repeat(40) };
    expect(() => parseEnv({ ...short, HOST: "0.0.0.0" })).toThrow(/so ADMIN_KEY must be set/);
    expect(parseEnv({ ...short, HOST: "127.0.0.1" }).HOST).toBe("127.0.0.1");
  });

  it("refuses a short legacy key or metrics token on an address others can reach, even outside production", () => {
    const strong = { ADMIN_KEY: "k".repeat(40), HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40), COMMAND_MASTER_KEY: "c".repeat(40), HOST: "0.0.0.0" };
    expect(() => parseEnv({ ...strong, LEGACY_ENROLLMENT_KEY: "1234" })).toThrow(/so LEGACY_ENROLLMENT_KEY must be set/);
    expect(() => parseEnv({ ...strong, METRICS_TOKEN: "x" })).toThrow(/so METRICS_TOKEN must be set/);
    expect(parseEnv({ ...strong, HOST: "127.0.0.1", LEGACY_ENROLLMENT_KEY: "1234" }).LEGACY_ENROLLMENT_KEY).toBe("1234");
    expect(parseEnv({ ...strong, LEGACY_ENROLLMENT_KEY: "l".repeat(32) }).LEGACY_ENROLLMENT_KEY).toBe("l".repeat(32));
  });

  it("refuses one value for two secrets, which would undo their separation", () => {
    const same = "z".repeat(40);
    expect(() => parseEnv({ ADMIN_KEY: "k".repeat(40), HMAC_SECRET: same, JWT_SECRET: "j".repeat(40), COMMAND_MASTER_KEY: same })).toThrow(
      /COMMAND_MASTER_KEY: each secret needs its own value/,
    );
    expect(() =>
      parseEnv({ ADMIN_KEY: same, HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40), COMMAND_MASTER_KEY: "c".repeat(40), METRICS_TOKEN: same }),
    ).toThrow(/METRICS_TOKEN/);
  });

  it("takes the previous command master key only with its id, a different one, and a strong distinct value off loopback", () => {
    const strong = {
      ADMIN_KEY: "k".repeat(40),
      HMAC_SECRET: "s".repeat(40),
      JWT_SECRET: "j".repeat(40),
      COMMAND_MASTER_KEY: "c".repeat(40),
      COMMAND_KEY_ID: "2",
    };
    const env = parseEnv({ ...strong, COMMAND_MASTER_KEY_PREVIOUS: "p".repeat(40), COMMAND_KEY_ID_PREVIOUS: "1" });
    expect(env).toMatchObject({ COMMAND_MASTER_KEY_PREVIOUS: "p".repeat(40), COMMAND_KEY_ID_PREVIOUS: "1", COMMAND_KEY_ROTATION_BATCH: 500 });
    const unset = parseEnv(strong);
    expect([unset.COMMAND_MASTER_KEY_PREVIOUS, unset.COMMAND_KEY_ID_PREVIOUS]).toEqual([undefined, undefined]);
    expect(() => parseEnv({ ...strong, COMMAND_MASTER_KEY_PREVIOUS: "p".repeat(40) })).toThrow(/COMMAND_KEY_ID_PREVIOUS: .*set together/);
    expect(() => parseEnv({ ...strong, COMMAND_KEY_ID_PREVIOUS: "1" })).toThrow(/COMMAND_MASTER_KEY_PREVIOUS: .*set together/);
    expect(() => parseEnv({ ...strong, COMMAND_MASTER_KEY_PREVIOUS: "p".repeat(40), COMMAND_KEY_ID_PREVIOUS: "2" })).toThrow(
      /COMMAND_KEY_ID_PREVIOUS: must differ from COMMAND_KEY_ID/,
    );
    expect(() => parseEnv({ ...strong, COMMAND_MASTER_KEY_PREVIOUS: "c".repeat(40), COMMAND_KEY_ID_PREVIOUS: "1" })).toThrow(
      /COMMAND_MASTER_KEY_PREVIOUS: each secret needs its own value/,
    );
    expect(() => parseEnv({ ...strong, COMMAND_MASTER_KEY_PREVIOUS: "short", COMMAND_KEY_ID_PREVIOUS: "1" })).toThrow(
      /so COMMAND_MASTER_KEY_PREVIOUS must be set/,
    );
  });

  it("listens on every interface by default once the secrets are set", () => {
    const env = parseEnv({ ADMIN_KEY: "k".repeat(40), HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40), COMMAND_MASTER_KEY: "c".repeat(40) });
    expect(env).toMatchObject({ HOST: "0.0.0.0", generatedSecrets: [] });
  });

  it("refuses to start production on default or short secrets, naming each", () => {
    expect(() => parseEnv({ NODE_ENV: "production" })).toThrow(/ADMIN_KEY[\s\S]*HMAC_SECRET[\s\S]*JWT_SECRET[\s\S]*COMMAND_MASTER_KEY/);
    expect(() => parseEnv({ NODE_ENV: "production", ADMIN_KEY: "short", HMAC_SECRET: "x".repeat(40) })).toThrow(/ADMIN_KEY/);
  });

  it("accepts production with strong secrets", () => {
    const env = parseEnv({
      NODE_ENV: "production",
      ADMIN_KEY: "k".repeat(40),
      HMAC_SECRET: "s".repeat(40),
      JWT_SECRET: "j".repeat(40),
      COMMAND_MASTER_KEY: "c".repeat(40),
      PORT: "9000",
    });
    expect(env.PORT).toBe(9000);
  });

  it("refuses a short METRICS_TOKEN in production", () => {
    const strong = {
      NODE_ENV: "production",
      ADMIN_KEY: "k".repeat(40),
      HMAC_SECRET: "s".repeat(40),
      JWT_SECRET: "j".repeat(40),
      COMMAND_MASTER_KEY: "c".repeat(40),
    };
    expect(() => parseEnv({ ...strong, METRICS_TOKEN: "short" })).toThrow(/METRICS_TOKEN/);
    expect(parseEnv({ ...strong, METRICS_TOKEN: "m".repeat(32) }).METRICS_TOKEN).toBe("m".repeat(32));
  });

  it("refuses a headers timeout longer than the request timeout, which Node would refuse at start", () => {
    expect(() => parseEnv({ HTTP_HEADERS_TIMEOUT_SECONDS: "40", HTTP_REQUEST_TIMEOUT_SECONDS: "30" })).toThrow(/HTTP_HEADERS_TIMEOUT_SECONDS/);
  });

  it("hashes at bcrypt cost 12 by default, and takes a cost under 10 only for a test run on loopback", () => {
    const strong = { ADMIN_KEY: "k".repeat(40), HMAC_SECRET: "s".repeat(40), JWT_SECRET: "j".repeat(40), COMMAND_MASTER_KEY: "c".repeat(40) };
    expect(parseEnv({ NODE_ENV: "test" }).BCRYPT_COST).toBe(12);
    expect(parseEnv({ NODE_ENV: "test", BCRYPT_COST: "4" }).BCRYPT_COST).toBe(4);
    expect(parseEnv({ NODE_ENV: "test", ...strong, HOST: "127.0.0.1", BCRYPT_COST: "4" }).BCRYPT_COST).toBe(4);
    const refused = /BCRYPT_COST: must be at least 10/;
    expect(() => parseEnv({ NODE_ENV: "test", ...strong, BCRYPT_COST: "4" })).toThrow(refused);
    expect(() => parseEnv({ NODE_ENV: "test", ...strong, HOST: "0.0.0.0", BCRYPT_COST: "9" })).toThrow(refused);
    expect(() => parseEnv({ NODE_ENV: "development", DATA_DIR: tempDataDir(), BCRYPT_COST: "9" })).toThrow(refused);
    expect(() => parseEnv({ NODE_ENV: "production", ...strong, BCRYPT_COST: "4" })).toThrow(refused);
    expect(() => parseEnv({ NODE_ENV: "test", BCRYPT_COST: "3" })).toThrow(/BCRYPT_COST/);
    expect(parseEnv({ NODE_ENV: "development", DATA_DIR: tempDataDir(), BCRYPT_COST: "10" }).BCRYPT_COST).toBe(10);
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
  const env = parseEnv({ ADMIN_KEY: "", DATABASE_URL: "", PORT: "", DATA_DIR: tempDataDir() });
  expect(env.generatedSecrets).toContain("ADMIN_KEY");
  expect(env.DATABASE_URL).toBeUndefined();
  expect(env.PORT).toBe(8000);
});

it("marks a device offline after two missed heartbeats plus a grace unless OFFLINE_AFTER_SECONDS says otherwise", () => {
  expect(parseEnv({ NODE_ENV: "test" }).OFFLINE_AFTER_SECONDS).toBe(2 * 60 + 30);
  expect(parseEnv({ NODE_ENV: "test", HEARTBEAT_INTERVAL_SECONDS: "10" }).OFFLINE_AFTER_SECONDS).toBe(50);
  expect(parseEnv({ NODE_ENV: "test", HEARTBEAT_INTERVAL_SECONDS: "10", OFFLINE_AFTER_SECONDS: "600" }).OFFLINE_AFTER_SECONDS).toBe(600);
});

it("takes PUBLIC_API_URL as an http(s) URL without its trailing slash", () => {
  expect(parseEnv({ NODE_ENV: "test" }).PUBLIC_API_URL).toBeUndefined();
  expect(parseEnv({ NODE_ENV: "test", PUBLIC_API_URL: "https://mdm.example.com/" }).PUBLIC_API_URL).toBe("https://mdm.example.com");
  expect(() => parseEnv({ NODE_ENV: "test", PUBLIC_API_URL: "ftp://mdm.example.com" })).toThrow(/PUBLIC_API_URL/);
});
