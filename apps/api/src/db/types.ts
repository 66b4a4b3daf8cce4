import type { Prisma } from "../generated/prisma/client";
import type { Db } from "./client";

/** The client or an open transaction: services that may run inside one take this. */
export type DbOrTx = Db | Prisma.TransactionClient;
