import {
  type CreateDevicePolicyRequest,
  type CreatePolicyAssignmentRequest,
  type ProvisioningRequest,
  type UpdateDevicePolicyRequest,
  apiRoutes,
} from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export const devicePoliciesKey = apiPath(apiRoutes.listDevicePolicies);
const versionsKey = (policyId: string) => apiPath(apiRoutes.listDevicePolicyVersions, { params: { policyId } });
const effectiveKey = (deviceId: string) => apiPath(apiRoutes.deviceEffectivePolicy, { params: { deviceId } });
export const complianceKey = apiPath(apiRoutes.policyCompliance);

/** Policies (versioned desired state) with their assignments. */
export function useDevicePolicies() {
  return useSWR(devicePoliciesKey, () => callApi(apiRoutes.listDevicePolicies));
}

export function usePolicyVersions(policyId: string | undefined) {
  return useSWR(policyId ? versionsKey(policyId) : null, () => callApi(apiRoutes.listDevicePolicyVersions, { params: { policyId: policyId! } }));
}

export function useEffectivePolicy(deviceId: string) {
  return useSWR(effectiveKey(deviceId), () => callApi(apiRoutes.deviceEffectivePolicy, { params: { deviceId } }), { refreshInterval: 5000 });
}

export function usePolicyCompliance() {
  return useSWR(complianceKey, () => callApi(apiRoutes.policyCompliance), { refreshInterval: 5000 });
}

/** After any change: the list, the history of the policy, compliance and effective policies may all differ. */
async function refresh(policyId?: string) {
  await Promise.all([
    mutate(devicePoliciesKey),
    mutate(complianceKey),
    policyId ? mutate(versionsKey(policyId)) : undefined,
    mutate((key) => typeof key === "string" && key.startsWith("/admin/devices/") && key.endsWith("/policy")),
  ]);
}

export async function createDevicePolicy(body: CreateDevicePolicyRequest) {
  const policy = await callApi(apiRoutes.createDevicePolicy, { body });
  await refresh(policy.id);
  return policy;
}

export async function updateDevicePolicy(policyId: string, body: UpdateDevicePolicyRequest) {
  const policy = await callApi(apiRoutes.updateDevicePolicy, { params: { policyId }, body });
  await refresh(policyId);
  return policy;
}

export async function revertDevicePolicy(policyId: string, version: number) {
  const policy = await callApi(apiRoutes.revertDevicePolicy, { params: { policyId, version: String(version) } });
  await refresh(policyId);
  return policy;
}

export async function deleteDevicePolicy(policyId: string) {
  await callApi(apiRoutes.deleteDevicePolicy, { params: { policyId } });
  await refresh();
}

export async function assignDevicePolicy(policyId: string, body: CreatePolicyAssignmentRequest) {
  const assignment = await callApi(apiRoutes.createPolicyAssignment, { params: { policyId }, body });
  await refresh(policyId);
  return assignment;
}

export async function unassignDevicePolicy(policyId: string, assignmentId: string) {
  await callApi(apiRoutes.deletePolicyAssignment, { params: { policyId, assignmentId } });
  await refresh(policyId);
}

export function provisioningPayload(tokenId: string, body: ProvisioningRequest) {
  return callApi(apiRoutes.enrollmentProvisioning, { params: { tokenId }, body });
}
