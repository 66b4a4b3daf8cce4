import fs from "node:fs";
import path from "node:path";
import { EnvSchema } from "./env";

// .env.example is the list of settings users copy to .env: it must name every variable the
// API parses and every variable the dashboard reads, so none is only discoverable in the code.

const ROOT = path.resolve(__dirname, "../../../..");
const WEB = path.join(ROOT, "apps/web");

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");

/** Names a .env file sets or shows commented out: `NAME=…` or `# NAME=…`. */
function namesInEnvFile(text: string): string[] {
  return [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]!);
}

/** `process.env.NAME` in the dashboard's own source (its tests and e2e harness aside). */
function dashboardVariables(): string[] {
  const files = ["app", "components", "lib"]
    .flatMap((dir) => fs.readdirSync(path.join(WEB, dir), { recursive: true, encoding: "utf8" }).map((file) => path.join(WEB, dir, file)))
    .filter((file) => /\.tsx?$/.test(file) && !/\.test\.tsx?$/.test(file))
    .concat(path.join(WEB, "next.config.ts"), path.join(WEB, "server.js"));
  const names = files.flatMap((file) => [...fs.readFileSync(file, "utf8").matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)].map((match) => match[1]!));
  return [...new Set(names)];
}

const apiVariables = Object.keys(EnvSchema.shape);
const allVariables = () => [...new Set([...apiVariables, ...dashboardVariables()])];
const sorted = (names: string[]) => [...names].sort();

it("finds the variables it checks (guards the scan itself)", () => {
  expect(apiVariables).toEqual(expect.arrayContaining(["PORT", "DATABASE_URL", "REDIS_URL", "TRUST_PROXY"]));
  expect(dashboardVariables()).toContain("NEXT_PUBLIC_API_URL");
});

it(".env.example lists every variable of the API's schema and of the dashboard, once, and no other", () => {
  const listed = namesInEnvFile(read(".env.example"));
  expect(sorted(listed)).toEqual(sorted(allVariables()));
});

it("the README documents every variable too", () => {
  const readme = read("README.md");
  const undocumented = allVariables().filter((name) => !readme.includes(`\`${name}\``));
  expect(undocumented).toEqual([]);
});
