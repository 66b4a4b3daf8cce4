import { type ErrorCode, type ValidationIssue, errorStatus } from "@mdm/contracts";

/** The one error type services throw; the error middleware turns it into the contract's body. */
export class HttpError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ValidationIssue[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.status = errorStatus[code];
  }
}
