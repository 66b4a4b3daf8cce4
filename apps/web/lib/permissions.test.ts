import { apiRoutes } from "@mdm/contracts";
import { mayCall, permissionsFor } from "./permissions";

describe("permissionsFor", () => {
  test("viewers read, operators also command, admins also manage users and settings", () => {
    expect(permissionsFor("viewer")).toMatchObject({ canSendCommands: false, canCancelCommands: false, canManageUsers: false, canManageSettings: false });
    expect(permissionsFor("operator")).toMatchObject({ canSendCommands: true, canCancelCommands: true, canManageUsers: false, canManageSettings: false });
    expect(permissionsFor("admin")).toMatchObject({ canSendCommands: true, canManageUsers: true, canManageSettings: true });
  });

  test("only admins see the mail outbox: it holds sign-in links", () => {
    expect(permissionsFor("viewer").canViewMail).toBe(false);
    expect(permissionsFor("operator").canViewMail).toBe(false);
    expect(permissionsFor("admin").canViewMail).toBe(true);
  });

  test("nobody signed in may do anything", () => {
    expect(Object.values(permissionsFor(undefined)).some(Boolean)).toBe(false);
  });
});

describe("mayCall", () => {
  test("follows each route's declared least role", () => {
    expect(mayCall("viewer", apiRoutes.listDevices)).toBe(true);
    expect(mayCall("viewer", apiRoutes.createCommand)).toBe(false);
    expect(mayCall("operator", apiRoutes.listUsers)).toBe(false);
  });
});
