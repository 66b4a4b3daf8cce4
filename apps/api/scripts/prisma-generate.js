// Runs `prisma generate` for the API's client. Generation itself is WASM; Prisma still
// tries to download its native schema engine first, which fails offline. When that engine
// is not installed, point Prisma at a stand-in so generation proceeds; with the engine
// present (or the variable set by the user) Prisma runs exactly as usual.
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY && !schemaEngineInstalled()) {
  env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
}
const config = path.join(__dirname, "..", "..", "..", "prisma", "prisma.config.ts");
const result = spawnSync("npx", ["prisma", "generate", "--config", config], { stdio: "inherit", env });
process.exit(result.status ?? 1);

function schemaEngineInstalled() {
  try {
    const enginesDir = path.dirname(require.resolve("@prisma/engines/package.json"));
    return fs.readdirSync(enginesDir).some((name) => name.startsWith("schema-engine"));
  } catch {
    return false;
  }
}
