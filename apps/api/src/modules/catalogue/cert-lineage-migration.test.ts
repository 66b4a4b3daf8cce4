import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "../../db/migrate";
import { createEmptyDatabase, describeWithPostgres } from "../../test";

// Versions saved before the reader verified key rotation lineages: each gets its own
// certificate as its lineage, as a version of a key that never rotated has.
describeWithPostgres("the certificate lineage migration", () => {
  it("gives each existing version its certificate as its lineage", async () => {
    const empty = await createEmptyDatabase();
    const before = fs.mkdtempSync(path.join(os.tmpdir(), "migrations-before-"));
    try {
      for (const name of fs.readdirSync(DEFAULT_MIGRATIONS_DIR)) {
        if (name >= "20261210000200") continue;
        fs.cpSync(path.join(DEFAULT_MIGRATIONS_DIR, name), path.join(before, name), { recursive: true });
      }
      await migrate(empty.url, before);
      const client = new Client({ connectionString: empty.url });
      await client.connect();
      try {
        const [a, b] = ["a".repeat(64), "b".repeat(64)];
        await client.query(`INSERT INTO "CatalogueApp" ("packageName", "certSha256") VALUES ('com.example.app', '${a}')`);
        for (const [id, versionCode, cert] of [
          ["00000000-0000-4000-8000-000000000001", 1, a],
          ["00000000-0000-4000-8000-000000000002", 2, b],
        ] as const) {
          await client.query(
            `INSERT INTO "AppVersion" (id, "packageName", "versionCode", sha256, "sizeBytes", "certSha256") VALUES ($1, 'com.example.app', $2, $3, 1, $3)`,
            [id, versionCode, cert],
          );
        }
        expect((await migrate(empty.url)).applied).toContain("20261210000200_app_version_cert_lineage");
        const after = await client.query<{ certLineage: string[] }>(`SELECT "certLineage" FROM "AppVersion" ORDER BY "versionCode"`);
        expect(after.rows.map((row) => row.certLineage)).toEqual([[a], [b]]);
      } finally {
        await client.end();
      }
    } finally {
      fs.rmSync(before, { recursive: true, force: true });
      await empty.close();
    }
  });
});
