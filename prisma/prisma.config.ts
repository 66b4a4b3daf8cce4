// Prisma CLI configuration. The URL is only needed by `prisma migrate deploy`, for
// operators who prefer Prisma's own migrator to `npm run db:migrate`.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "schema.prisma",
  migrations: { path: "migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "" },
});
