import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "../../db/migrate";
import { createEmptyDatabase, describeWithPostgres } from "../../test";

// Releases saved before `completed` existed: those at 100% were sent to their whole target
// and must not block the app's next release once the migration has run.
describeWithPostgres("the completed release migration", () => {
  it("completes releases left active or paused at 100%, and leaves the others as they were", async () => {
    const empty = await createEmptyDatabase();
    const before = fs.mkdtempSync(path.join(os.tmpdir(), "migrations-before-"));
    try {
      for (const name of fs.readdirSync(DEFAULT_MIGRATIONS_DIR)) {
        if (name >= "20261209000000") continue;
        fs.cpSync(path.join(DEFAULT_MIGRATIONS_DIR, name), path.join(before, name), { recursive: true });
      }
      await migrate(empty.url, before);
      const client = new Client({ connectionString: empty.url });
      await client.connect();
      try {
        const sha = "a".repeat(64);
        await client.query(`INSERT INTO "CatalogueApp" ("packageName", "certSha256") VALUES ('com.example.app', '${sha}')`);
        await client.query(
          `INSERT INTO "AppVersion" (id, "packageName", "versionCode", sha256, "sizeBytes", "certSha256")
           VALUES ('00000000-0000-4000-8000-000000000001', 'com.example.app', 1, '${sha}', 1, '${sha}')`,
        );
        const releases = [
          ["00000000-0000-4000-8000-0000000000a1", "active", 100],
          ["00000000-0000-4000-8000-0000000000a2", "paused", 100],
          ["00000000-0000-4000-8000-0000000000a3", "active", 25],
          ["00000000-0000-4000-8000-0000000000a4", "rolled_back", 100],
        ] as const;
        for (const [id, status, percent] of releases) {
          await client.query(
            `INSERT INTO "AppRelease" (id, "packageName", "versionId", target, percent, status)
             VALUES ($1, 'com.example.app', '00000000-0000-4000-8000-000000000001', '{"all":true}', $2, $3)`,
            [id, percent, status],
          );
        }
        expect((await migrate(empty.url)).applied).toEqual(
          expect.arrayContaining(["20261209000000_app_release_completed", "20261209000100_complete_full_releases"]),
        );
        const after = await client.query<{ id: string; status: string }>(`SELECT id::text, status::text FROM "AppRelease" ORDER BY id`);
        expect(after.rows.map((row) => row.status)).toEqual(["completed", "completed", "active", "rolled_back"]);
      } finally {
        await client.end();
      }
    } finally {
      fs.rmSync(before, { recursive: true, force: true });
      await empty.close();
    }
  });
});

// Releases saved before versions could be deleted: their version codes are copied onto the
// release and device rows, so their history outlives the versions.
describeWithPostgres("the catalogue delete migration", () => {
  it("copies each release's version codes and name, and each device row's version code, from the versions", async () => {
    const empty = await createEmptyDatabase();
    const before = fs.mkdtempSync(path.join(os.tmpdir(), "migrations-before-"));
    try {
      for (const name of fs.readdirSync(DEFAULT_MIGRATIONS_DIR)) {
        if (name >= "20261210000000") continue;
        fs.cpSync(path.join(DEFAULT_MIGRATIONS_DIR, name), path.join(before, name), { recursive: true });
      }
      await migrate(empty.url, before);
      const client = new Client({ connectionString: empty.url });
      await client.connect();
      try {
        const sha = "a".repeat(64);
        const v1 = "00000000-0000-4000-8000-000000000001";
        const v2 = "00000000-0000-4000-8000-000000000002";
        const device = "00000000-0000-4000-8000-0000000000d1";
        await client.query(`INSERT INTO "CatalogueApp" ("packageName", "certSha256") VALUES ('com.example.app', '${sha}')`);
        await client.query(
          `INSERT INTO "AppVersion" (id, "packageName", "versionCode", "versionName", sha256, "sizeBytes", "certSha256")
           VALUES ($1, 'com.example.app', 1, NULL, '${sha}', 1, '${sha}'), ($2, 'com.example.app', 2, '2.0', '${"b".repeat(64)}', 1, '${sha}')`,
          [v1, v2],
        );
        await client.query(`INSERT INTO "Device" (id, "tokenHash", "updatedAt") VALUES ($1, '${"c".repeat(64)}', now())`, [device]);
        await client.query(
          `INSERT INTO "AppRelease" (id, "packageName", "versionId", "previousVersionId", target, percent, status)
           VALUES ('00000000-0000-4000-8000-0000000000a1', 'com.example.app', $1, $2, '{"all":true}', 100, 'rolled_back'),
                  ('00000000-0000-4000-8000-0000000000a2', 'com.example.app', $1, NULL, '{"all":true}', 5, 'active')`,
          [v2, v1],
        );
        await client.query(
          `INSERT INTO "AppReleaseDevice" ("releaseId", "deviceId", "versionId", "sentAt") VALUES ('00000000-0000-4000-8000-0000000000a1', $1, $2, now())`,
          [device, v1],
        );
        expect((await migrate(empty.url)).applied).toContain("20261210000000_catalogue_delete");
        const releases = await client.query(`SELECT "versionCode", "versionName", "previousVersionCode" FROM "AppRelease" ORDER BY id`);
        expect(releases.rows).toEqual([
          { versionCode: 2, versionName: "2.0", previousVersionCode: 1 },
          { versionCode: 2, versionName: "2.0", previousVersionCode: null },
        ]);
        expect((await client.query(`SELECT "versionCode" FROM "AppReleaseDevice"`)).rows).toEqual([{ versionCode: 1 }]);
        // A release's version can go now (it was RESTRICT); the releases stay, unlinked from it.
        await client.query(`DELETE FROM "AppVersion" WHERE id = $1`, [v2]);
        expect((await client.query(`SELECT "versionId", "versionCode" FROM "AppRelease" ORDER BY id`)).rows).toEqual([
          { versionId: null, versionCode: 2 },
          { versionId: null, versionCode: 2 },
        ]);
      } finally {
        await client.end();
      }
    } finally {
      fs.rmSync(before, { recursive: true, force: true });
      await empty.close();
    }
  });
});
