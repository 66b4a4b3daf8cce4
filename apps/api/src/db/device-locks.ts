import { Prisma } from "../generated/prisma/client";

// Every statement that updates several Device rows, and may wait for them, locks them first
// in id order: a heartbeat batch, the socket leases' take, release, renewal and sweep, a bulk
// edit, a policy recompute. Two statements locking rows in different orders (one in its
// input's order, one in the table's) deadlock, and PostgreSQL notices only after
// deadlock_timeout (1 s), then fails one of them: a heartbeat batch stalled a second behind
// each socket lease renewal of 5,000 devices, its heartbeats queueing past their bound
// (bench/RESULTS.md, 2026-12-02). The offline sweep skips locked rows, so it never waits.

/** The ids of the Device rows matching `where`, locked in id order (a CTE of the update). */
export const devicesLockedInIdOrder = (where: Prisma.Sql) => Prisma.sql`SELECT id FROM "Device" WHERE ${where} ORDER BY id FOR NO KEY UPDATE`;

/**
 * The same, for a statement written as text with positional parameters; `columns` are read
 * as the rows are once locked (newer than the statement's snapshot if it waited for them).
 */
export const devicesLockedInIdOrderSql = (where: string, columns = "id") => `SELECT ${columns} FROM "Device" WHERE ${where} ORDER BY id FOR NO KEY UPDATE`;
