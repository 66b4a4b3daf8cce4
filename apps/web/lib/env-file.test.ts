import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT_ENV_FILE, loadEnvFile } from "./env-file";

describe("loadEnvFile", () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-web-env-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("fills unset variables from the file; real variables win", () => {
    const file = path.join(dir, ".env");
    fs.writeFileSync(file, "# the API\nNEXT_PUBLIC_API_URL=https://api.example.com\nPORT=9000\n");
    const target: Record<string, string | undefined> = { PORT: "8000" };
    expect(loadEnvFile(file, target)).toBe(true);
    expect(target).toEqual({ NEXT_PUBLIC_API_URL: "https://api.example.com", PORT: "8000" });
  });

  it("is optional", () => {
    const target: Record<string, string | undefined> = {};
    expect(loadEnvFile(path.join(dir, "missing.env"), target)).toBe(false);
    expect(target).toEqual({});
  });

  it("reads the .env at the repository root, next to .env.example", () => {
    expect(path.basename(ROOT_ENV_FILE)).toBe(".env");
    expect(fs.existsSync(path.join(path.dirname(ROOT_ENV_FILE), ".env.example"))).toBe(true);
  });
});
