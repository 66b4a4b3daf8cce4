import fs from "node:fs";
import path from "node:path";
import { type Extension, PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

// pg_trgm backs the device search's trigram indexes, as on a real server. A package
// subpath export, which this project's module resolution does not type: required as such.
const { pg_trgm } = require("@electric-sql/pglite/contrib/pg_trgm") as { pg_trgm: Extension };

// pglite-socket can mix up queries arriving on different connections at once
// (electric-sql/pglite#1046): clients keep to one connection, which costs nothing since
// PGlite runs one query at a time anyway.
export const EMBEDDED_POOL_SIZE = 1;

export type EmbeddedDatabase = { url: string; stop: () => Promise<void> };

/**
 * PostgreSQL compiled to WASM (PGlite), served over the wire protocol on loopback so the
 * API talks to it exactly as to a real server. For laptops and demos: it runs one query
 * at a time. `dataDir` undefined keeps it in memory.
 */
export async function startEmbeddedDatabase(dataDir?: string): Promise<EmbeddedDatabase> {
  if (dataDir) fs.mkdirSync(path.dirname(path.resolve(dataDir)), { recursive: true });
  const db = await PGlite.create({ ...(dataDir ? { dataDir } : {}), extensions: { pg_trgm } });
  // One connection per pool slot; PGlite serializes their queries itself.
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 32 });
  await server.start();
  return {
    url: `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
