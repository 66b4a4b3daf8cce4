import { type ApiRoute, ErrorBody } from "@mdm/contracts";
import { z } from "zod";
import type { Db } from "../db/client";

const tablesOf = new WeakMap<Db, Array<{ tablename: string }>>();

/**
 * Rows in every table, by table. The admin nonces (`UsedNonce`), which each authenticated
 * admin request adds by design, are left out unless asked for; `exclude` leaves out the
 * tables a background worker writes to.
 */
export async function rowCounts(db: Db, options: { withNonces?: boolean; exclude?: readonly string[] } = {}): Promise<Record<string, number>> {
  let tables = tablesOf.get(db);
  if (!tables) {
    tables = await db.$queryRaw<Array<{ tablename: string }>>`
      SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations' ORDER BY tablename`;
    tablesOf.set(db, tables);
  }
  const counted = tables
    .map(({ tablename }) => tablename)
    .filter((table) => (options.withNonces || table !== "UsedNonce") && !options.exclude?.includes(table));
  const rows = await db.$queryRawUnsafe<Array<{ table: string; count: number }>>(
    counted.map((table) => `SELECT '${table}' AS "table", count(*)::int AS count FROM "${table}"`).join(" UNION ALL "),
  );
  return Object.fromEntries(rows.map((row) => [row.table, row.count]));
}

/** Asserts a response carries the contract's error body (optionally with `code`) and returns it. */
export function expectErrorBody(res: { headers: Record<string, unknown>; body: unknown }, code?: string): ErrorBody {
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  const parsed = ErrorBody.safeParse(res.body);
  expect(parsed.error).toBeUndefined();
  if (code) expect(parsed.data!.error.code).toBe(code);
  return parsed.data!;
}

/** A JSON object nested `depth` levels deep. */
export function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/** The top-level property names a body schema knows, across union branches. */
export function bodyKeys(route: ApiRoute): string[] {
  const keys = new Set<string>();
  const visit = (schema: Record<string, unknown>) => {
    for (const key of Object.keys((schema.properties as object | undefined) ?? {})) keys.add(key);
    for (const branch of [schema.anyOf, schema.oneOf, schema.allOf]) if (Array.isArray(branch)) branch.forEach(visit);
  };
  visit(z.toJSONSchema(route.body!, { io: "input", unrepresentable: "any" }) as Record<string, unknown>);
  return [...keys];
}
