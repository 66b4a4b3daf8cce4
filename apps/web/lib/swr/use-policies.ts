import { type CreateAppPolicyRequest, type UpdateAppPolicyRequest, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export const policiesKey = apiPath(apiRoutes.listPolicies);

export function usePolicies() {
  return useSWR(policiesKey, () => callApi(apiRoutes.listPolicies));
}

export async function createPolicy(body: CreateAppPolicyRequest) {
  const policy = await callApi(apiRoutes.createPolicy, { body });
  await mutate(policiesKey);
  return policy;
}

export async function deletePolicy(policyId: string) {
  await callApi(apiRoutes.deletePolicy, { params: { policyId } });
  await mutate(policiesKey);
}

export async function updatePolicy(policyId: string, body: UpdateAppPolicyRequest) {
  const policy = await callApi(apiRoutes.updatePolicy, { params: { policyId }, body });
  await mutate(policiesKey);
  return policy;
}
