import type { DbOrTx } from "../db/types";

/** The actor of what an unauthenticated client did (a failed sign-in, a reset request): what it claimed goes in the details. */
export const ANONYMOUS = "anonymous";

export type AuditEntry = {
  actor: string;
  action: string;
  targetType?: string;
  targetId?: string;
  ip?: string;
  details?: Record<string, unknown>;
};

export async function recordAudit(db: DbOrTx, entry: AuditEntry): Promise<void> {
  await db.auditLog.create({ data: { ...entry, details: entry.details as object | undefined } });
}
