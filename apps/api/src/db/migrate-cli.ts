// `npm run db:migrate`: applies pending migrations to DATABASE_URL, or to the embedded
// database under DATA_DIR when DATABASE_URL is not set.
import path from "node:path";
import { parseEnv } from "../config/env";
import { loadEnvFile } from "../config/env-file";
import { startEmbeddedDatabase } from "./embedded";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "./migrate";

async function main() {
  loadEnvFile();
  const env = parseEnv();
  const embedded = env.DATABASE_URL ? undefined : await startEmbeddedDatabase(path.join(env.DATA_DIR, "pglite"));
  try {
    const report = await migrate(env.DATABASE_URL ?? embedded!.url, env.MIGRATIONS_DIR ?? DEFAULT_MIGRATIONS_DIR);
    console.log(
      `Applied ${report.applied.length} migration(s)${report.applied.length ? `: ${report.applied.join(", ")}` : ""}; ${report.alreadyApplied.length} already applied.`,
    );
  } finally {
    await embedded?.stop();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
