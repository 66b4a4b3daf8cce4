// `npm run user:create-admin -w @mdm/api -- --email ops@example.com [--name "Ops"]`, with the
// password in PASSWORD (or --password, which other users of the machine can see in `ps`).
// EMAIL and NAME work as variables too. Uses DATABASE_URL, or the embedded database under
// DATA_DIR (stop the API first: the embedded database has one owner at a time).
import path from "node:path";
import { SetupRequest, type UserView } from "@mdm/contracts";
import { parseEnv } from "../../config/env";
import { loadEnvFile } from "../../config/env-file";
import { createDb } from "../../db/client";
import { startEmbeddedDatabase } from "../../db/embedded";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "../../db/migrate";
import { systemClock } from "../../deps";
import { HttpError } from "../../lib/http-error";
import { createAdminUser } from "../users/users.service";

const USAGE = "usage: user:create-admin --email <email> [--name <name>] [--password <password>]  (or EMAIL, NAME, PASSWORD in the environment)";

type Vars = Record<string, string | undefined>;

/** The admin to create, from `--email/--name/--password` arguments, else EMAIL/NAME/PASSWORD. */
export function parseCreateAdminArgs(argv: string[], vars: Vars): SetupRequest {
  const args: Vars = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(email|name|password)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${JSON.stringify(argv[i])}\n${USAGE}`);
    args[match[1]!] = match[2] ?? argv[++i];
  }
  const parsed = SetupRequest.safeParse({
    email: args.email ?? vars.EMAIL,
    password: args.password ?? vars.PASSWORD,
    ...((args.name ?? vars.NAME) ? { name: args.name ?? vars.NAME } : {}),
  });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join(".") || "input"}: ${issue.message}`).join("\n");
    throw new Error(`${problems}\n${USAGE}`);
  }
  return parsed.data;
}

/** Migrates the database if needed and creates the admin. */
export async function runCreateAdmin(argv: string[], vars: Vars): Promise<UserView> {
  const input = parseCreateAdminArgs(argv, vars);
  const env = parseEnv(vars);
  const embedded = env.DATABASE_URL ? undefined : await startEmbeddedDatabase(path.resolve(env.DATA_DIR, "pglite"));
  const url = env.DATABASE_URL ?? embedded!.url;
  const db = createDb(url, { maxConnections: 2 });
  try {
    await migrate(url, env.MIGRATIONS_DIR ?? DEFAULT_MIGRATIONS_DIR);
    return await createAdminUser({ db, env, clock: systemClock }, input, { name: "cli" });
  } finally {
    await db.$disconnect();
    await embedded?.stop();
  }
}

if (require.main === module) {
  loadEnvFile();
  runCreateAdmin(process.argv.slice(2), process.env).then(
    (user) => console.log(`Created admin ${user.email} (${user.id}).`),
    (error: unknown) => {
      console.error(error instanceof HttpError || error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
