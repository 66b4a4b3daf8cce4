import { type ApiRoute, type UserRole, apiRoutes } from "@mdm/contracts";

export type Role = UserRole;

const rank: Record<UserRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether a user of this role may call the route, by the route's own declaration in the contracts. */
export function mayCall(role: UserRole | undefined, route: ApiRoute): boolean {
  if (!role) return false;
  // Admin routes without a named role are for admins; session routes without one for anyone signed in.
  if (route.auth === "admin") return rank[role] >= rank[route.minRole ?? "admin"];
  if (route.auth === "session") return rank[role] >= rank[route.minRole ?? "viewer"];
  return true;
}

/** What the UI offers a role: exactly what the API would accept from it. */
export function permissionsFor(role: UserRole | undefined) {
  return {
    canSendCommands: mayCall(role, apiRoutes.createCommand) && mayCall(role, apiRoutes.createBulkCommand),
    canCancelCommands: mayCall(role, apiRoutes.cancelCommand),
    canManageDevices: mayCall(role, apiRoutes.updateDevice),
    canManagePolicies: mayCall(role, apiRoutes.createPolicy),
    canRetireDevices: mayCall(role, apiRoutes.retireDevice) && mayCall(role, apiRoutes.rotateDeviceToken) && mayCall(role, apiRoutes.bulkEditDevices),
    canDeleteDevices: mayCall(role, apiRoutes.deleteDevice),
    canCancelBatches: mayCall(role, apiRoutes.cancelBatch),
    canCreateEnrollmentTokens: mayCall(role, apiRoutes.createEnrollmentToken),
    canRevokeEnrollmentTokens: mayCall(role, apiRoutes.revokeEnrollmentToken),
    canManageSettings: mayCall(role, apiRoutes.updateAlertSettings),
    canAcknowledgeIncidents: mayCall(role, apiRoutes.acknowledgeIncident),
    canManageUsers: mayCall(role, apiRoutes.listUsers),
    canViewAuditLog: mayCall(role, apiRoutes.listAuditLog),
    canViewMail: mayCall(role, apiRoutes.listMailOutbox),
    canManageCatalogue: mayCall(role, apiRoutes.uploadApp) && mayCall(role, apiRoutes.createRelease),
    canManageApiKeys: mayCall(role, apiRoutes.createApiKey),
    canManageWebhooks: mayCall(role, apiRoutes.createWebhook),
    canExportAuditLog: mayCall(role, apiRoutes.exportAuditLog),
  };
}

export type Permissions = ReturnType<typeof permissionsFor>;

export const roleDescriptions: Record<UserRole, string> = {
  viewer: "Sees everything, changes nothing.",
  operator: "Also sends commands, enrolls devices and edits them.",
  admin: "Also changes alert settings and manages users.",
};
