import fs from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";

// Server-side only (next.config.ts): the dashboard reads the same root .env as the API, by the
// same rule (apps/api/src/config/env-file.ts): one file for both apps, whatever directory they run from.

/** The repository's `.env`, where `.env.example` says to copy itself. */
export const ROOT_ENV_FILE = path.resolve(__dirname, "../../../.env");

/** Adds the file's variables to `target`; a variable already set wins. A missing file is fine. */
export function loadEnvFile(file: string = ROOT_ENV_FILE, target: Record<string, string | undefined> = process.env): boolean {
  if (!fs.existsSync(file)) return false;
  for (const [name, value] of Object.entries(parseEnv(fs.readFileSync(file, "utf8")))) {
    if (target[name] === undefined) target[name] = value;
  }
  return true;
}
