import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT_ENV_FILE, loadEnvFile } from "./env-file";
import { parseEnv } from "./env";

describe("loadEnvFile", () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-env-file-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("fills unset variables from the file; real variables win", () => {
    const file = path.join(dir, ".env");
    fs.writeFileSync(file, ["# a comment", "PORT=19123", "ADMIN_KEY=from-file", 'MAIL_FROM="Ops <ops@example.com>"', "HMAC_SECRET=", ""].join("\n"));
    const target: NodeJS.ProcessEnv = { ADMIN_KEY: "from-environment" };

    expect(loadEnvFile(file, target)).toBe(true);

    expect(target).toEqual({ PORT: "19123", ADMIN_KEY: "from-environment", MAIL_FROM: "Ops <ops@example.com>", HMAC_SECRET: "" });
    const env = parseEnv(target);
    expect(env.PORT).toBe(19123);
    expect(env.ADMIN_KEY).toBe("from-environment");
  });

  it("is optional: no file, nothing changes", () => {
    const target: NodeJS.ProcessEnv = { PORT: "8000" };
    expect(loadEnvFile(path.join(dir, "missing.env"), target)).toBe(false);
    expect(target).toEqual({ PORT: "8000" });
  });

  it("reads the .env at the repository root, next to .env.example", () => {
    expect(path.basename(ROOT_ENV_FILE)).toBe(".env");
    expect(fs.existsSync(path.join(path.dirname(ROOT_ENV_FILE), ".env.example"))).toBe(true);
    expect(fs.existsSync(path.join(path.dirname(ROOT_ENV_FILE), "turbo.json"))).toBe(true);
  });
});
