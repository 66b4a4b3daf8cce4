import fs from "node:fs";
import path from "node:path";
import { parseEnv as parseEnvFile } from "node:util";

/**
 * The repository's `.env` (`.env.example` says to copy itself there), whatever the working
 * directory: `npm start` runs the API from apps/api. src/config and dist/config are at the same depth.
 */
export const ROOT_ENV_FILE = path.resolve(__dirname, "../../../../.env");

/**
 * Adds the variables of an env file to `target` (process.env at the entry points, before
 * parseEnv reads it). A variable already set keeps its value: the real environment wins over
 * the file, as with Node's --env-file. A missing file is not an error: the file is optional.
 */
export function loadEnvFile(file: string = ROOT_ENV_FILE, target: NodeJS.ProcessEnv = process.env): boolean {
  if (!fs.existsSync(file)) return false;
  for (const [name, value] of Object.entries(parseEnvFile(fs.readFileSync(file, "utf8")))) {
    if (target[name] === undefined) target[name] = value;
  }
  return true;
}
