import { AuditLogQuery, Email, InviteUserRequest, NewPassword, UpdateUserRequest } from "./auth";
import { authRoutes } from "./auth-routes";
import { buildOpenApiDocument } from "./openapi";
import type { ApiRoute } from "./route-types";
import { apiRoutes, routeErrors } from "./routes";

describe("auth schemas", () => {
  it("lower-cases emails and refuses what is not one", () => {
    expect(Email.parse("Ops@Example.COM")).toBe("ops@example.com");
    for (const bad of ["", "ops", "ops@", " ops@example.com", "a\u0000@example.com"]) expect(Email.safeParse(bad).success).toBe(false);
  });

  it("wants new passwords of 12 characters to 72 bytes (what bcrypt reads)", () => {
    expect(NewPassword.safeParse("x".repeat(11)).success).toBe(false);
    expect(NewPassword.safeParse("x".repeat(12)).success).toBe(true);
    expect(NewPassword.safeParse("x".repeat(72)).success).toBe(true);
    expect(NewPassword.safeParse("é".repeat(37)).success).toBe(false);
    expect(NewPassword.safeParse(`${"x".repeat(12)}\u0000`).success).toBe(false);
  });

  it("takes one of three roles", () => {
    expect(InviteUserRequest.safeParse({ email: "a@example.com", role: "operator" }).success).toBe(true);
    expect(InviteUserRequest.safeParse({ email: "a@example.com", role: "owner" }).success).toBe(false);
  });

  it("needs at least one change in a user update", () => {
    expect(UpdateUserRequest.safeParse({}).success).toBe(false);
    expect(UpdateUserRequest.safeParse({ disabled: true }).success).toBe(true);
  });

  it("takes only cursors that fit a bigint", () => {
    expect(AuditLogQuery.parse({ cursor: "9223372036854775807" }).cursor).toBe("9223372036854775807");
    for (const cursor of ["9223372036854775808", "-1", "1.5", "abc"]) expect(AuditLogQuery.safeParse({ cursor }).success).toBe(false);
  });
});

describe("auth routes in the route table and the document", () => {
  const document = buildOpenApiDocument();
  const operation = (route: ApiRoute) =>
    (document.paths[route.path] as Record<string, { security: unknown[]; responses: Record<string, unknown> }>)[route.method]!;

  it("are all part of apiRoutes", () => {
    for (const [name, route] of Object.entries(authRoutes)) expect(apiRoutes[name as keyof typeof apiRoutes]).toBe(route);
  });

  it("document 403 where a role or a CSRF token can be missing, and only there", () => {
    expect(routeErrors(apiRoutes.listUsers)).toContain("forbidden");
    expect(routeErrors(apiRoutes.updateUser)).toContain("forbidden");
    expect(routeErrors(apiRoutes.createEnrollmentToken)).toContain("forbidden");
    expect(routeErrors(apiRoutes.refreshSession)).toContain("forbidden");
    expect(routeErrors(apiRoutes.me)).not.toContain("forbidden");
    expect(routeErrors(apiRoutes.listAuditLog)).toContain("forbidden");
    expect(Object.keys(operation(apiRoutes.me).responses)).toContain("401");
  });

  it("let admin routes be called with a signature or an admin's session", () => {
    expect(operation(apiRoutes.createEnrollmentToken).security).toEqual([
      { adminKey: [], adminTimestamp: [], adminNonce: [], adminSignature: [] },
      { sessionCookie: [], csrfToken: [] },
      { bearerSession: [] },
    ]);
  });

  it("ask for the CSRF header with the cookie on writes only", () => {
    const signed = { adminKey: [], adminTimestamp: [], adminNonce: [], adminSignature: [] };
    expect(operation(apiRoutes.inviteUser).security).toEqual([signed, { sessionCookie: [], csrfToken: [] }, { bearerSession: [] }]);
    expect(operation(apiRoutes.listUsers).security).toEqual([signed, { sessionCookie: [] }, { bearerSession: [] }]);
    expect(operation(apiRoutes.me).security).toEqual([{ sessionCookie: [] }, { bearerSession: [] }]);
  });
});
