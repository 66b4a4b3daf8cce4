import { z } from "zod";
import { MailDelivery } from "./mail";
import { DateTime, Uuid, nonEmptyText, text } from "./primitives";

/** The access token's cookie (httpOnly); browsers send it with every request. */
export const SESSION_COOKIE = "mdm_session";
/** The refresh token's cookie (httpOnly, path /auth). */
export const REFRESH_COOKIE = "mdm_refresh";
/** A readable cookie holding the CSRF token, sent back as the `X-CSRF-Token` header. */
export const CSRF_COOKIE = "mdm_csrf";
export const CSRF_HEADER = "X-CSRF-Token";
/** A dashboard WebSocket from another origin offers `ticket.<ticket from GET /auth/ws-ticket>`. */
export const WS_TICKET_PROTOCOL_PREFIX = "ticket.";

/** What a user may do: viewers read, operators also send commands, admins also manage users. */
export const UserRole = z.enum(["admin", "operator", "viewer"]);
export type UserRole = z.infer<typeof UserRole>;

/** Compared and stored in lower case. */
export const Email = z.email().max(254).toLowerCase();

const utf8 = new TextEncoder();

// bcrypt reads at most 72 bytes: a longer password would be silently cut.
export const NewPassword = nonEmptyText(72)
  .min(12, "Must be at least 12 characters")
  .refine((value) => utf8.encode(value).length <= 72, "Must be at most 72 bytes in UTF-8");

export const UserView = z.object({
  id: Uuid,
  email: z.string(),
  name: z.string().nullable(),
  role: UserRole,
  disabled: z.boolean(),
  pending: z.boolean().describe("Invited and has not set a password yet."),
  createdAt: DateTime,
});
export type UserView = z.infer<typeof UserView>;

export const SetupStatusResponse = z.object({
  needed: z.boolean().describe("True while no user exists: `POST /auth/setup` then creates the first admin."),
  tokenRequired: z.boolean().describe("True when setup from this client needs `setupToken`: while setup is needed, for every client but the API's own host."),
});
export type SetupStatusResponse = z.infer<typeof SetupStatusResponse>;

export const SetupRequest = z.strictObject({
  email: Email,
  password: NewPassword,
  name: text(100).optional(),
  setupToken: z
    .string()
    .max(200)
    .optional()
    .describe("The one-time setup token the API prints in its log at start while no user exists; required from any client but the API's own host."),
});
export type SetupRequest = z.infer<typeof SetupRequest>;

export const LoginRequest = z.strictObject({
  email: Email,
  password: nonEmptyText(1024),
});
export type LoginRequest = z.infer<typeof LoginRequest>;

export const SessionResponse = z.object({
  user: UserView,
  csrfToken: z.string().describe("Send as `X-CSRF-Token` with every cookie-authenticated request that is not a GET. Also in the `mdm_csrf` cookie."),
  accessTokenExpiresAt: DateTime.describe("When the access cookie expires; `POST /auth/refresh` renews it."),
});
export type SessionResponse = z.infer<typeof SessionResponse>;

export const WsTicketResponse = z.object({
  ticket: z.string().describe("Offer `mdm.dashboard.v1, ticket.<ticket>` as WebSocket subprotocols to `GET /ws/dashboard`."),
  expiresAt: DateTime,
});
export type WsTicketResponse = z.infer<typeof WsTicketResponse>;

export const PasswordResetRequest = z.strictObject({ email: Email });
export type PasswordResetRequest = z.infer<typeof PasswordResetRequest>;

export const PasswordResetAccepted = z.object({
  message: z.string(),
  mail: MailDelivery.describe("Whether a mail provider is configured: the same for every address, so it tells nothing about accounts."),
});
export type PasswordResetAccepted = z.infer<typeof PasswordResetAccepted>;

export const PasswordResetConfirmRequest = z.strictObject({
  token: nonEmptyText(256).describe("The `token` of the link in the reset or invitation mail."),
  password: NewPassword,
});
export type PasswordResetConfirmRequest = z.infer<typeof PasswordResetConfirmRequest>;

export const PasswordResetCheckRequest = z.strictObject({
  token: nonEmptyText(256).describe("The `token` of the link in the reset or invitation mail."),
});
export type PasswordResetCheckRequest = z.infer<typeof PasswordResetCheckRequest>;

export const PasswordResetCheckResponse = z.object({
  valid: z.boolean().describe("False when the token is unknown, malformed, expired or already used, or its user is disabled."),
  expiresAt: z.iso.datetime({ offset: true }).nullable().describe("Until when a valid link can set a password; null when not valid."),
});
export type PasswordResetCheckResponse = z.infer<typeof PasswordResetCheckResponse>;

export const ListUsersResponse = z.object({ users: z.array(UserView) });
export type ListUsersResponse = z.infer<typeof ListUsersResponse>;

export const InviteUserRequest = z.strictObject({
  email: Email,
  name: text(100).optional(),
  role: UserRole,
});
export type InviteUserRequest = z.infer<typeof InviteUserRequest>;

export const InviteUserResponse = UserView.extend({ mail: MailDelivery });
export type InviteUserResponse = z.infer<typeof InviteUserResponse>;

export const UpdateUserRequest = z
  .strictObject({
    role: UserRole.optional(),
    disabled: z.boolean().optional(),
    name: text(100).nullable().optional(),
  })
  .refine((value) => Object.keys(value).length > 0, { message: "Send at least one of role, disabled, name" });
export type UpdateUserRequest = z.infer<typeof UpdateUserRequest>;

export const UserIdParams = z.object({ userId: Uuid });
export type UserIdParams = z.infer<typeof UserIdParams>;

// An audit entry's id: a PostgreSQL bigint in decimal.
const AuditCursor = z
  .string()
  .regex(/^\d{1,19}$/, { message: "Must be the nextCursor of a previous page", abort: true })
  .refine((value) => BigInt(value) <= 9223372036854775807n, "Must be the nextCursor of a previous page");

export const AuditLogQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: AuditCursor.optional().describe("`nextCursor` of the previous page."),
  actor: text(254).optional(),
  action: text(100).optional(),
  targetType: text(100).optional(),
  targetId: text(200).optional(),
  from: DateTime.optional().describe("Entries at or after this time."),
  to: DateTime.optional().describe("Entries before this time."),
});
export type AuditLogQuery = z.infer<typeof AuditLogQuery>;

export const AuditLogEntry = z.object({
  id: z.string(),
  at: DateTime,
  actor: z.string(),
  actorName: z.string().describe('The actor for people: "Admin key (ADMIN_KEY)", "Enrollment token Store 7", "Offline monitor", or the user\'s email as is.'),
  action: z.string(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  targetName: z
    .string()
    .nullable()
    .describe(
      "The target's name when the server knows it: a device's alias (else serial, else model), a user's email, an enrollment token's label. Null for a target gone or without a name.",
    ),
  ip: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditLogEntry = z.infer<typeof AuditLogEntry>;

export const ListAuditLogResponse = z.object({
  entries: z.array(AuditLogEntry),
  nextCursor: AuditCursor.nullable(),
});
export type ListAuditLogResponse = z.infer<typeof ListAuditLogResponse>;
