import { type CreateEnrollmentTokenRequest, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export const enrollmentTokensKey = apiPath(apiRoutes.listEnrollmentTokens);

/** Enrollment tokens, newest first, with their use and expiry (never their secrets). */
export function useEnrollmentTokens() {
  return useSWR(enrollmentTokensKey, () => callApi(apiRoutes.listEnrollmentTokens));
}

/** Creates a token and refreshes the list; the answer is the only time its secret is shown. */
export async function createEnrollmentToken(body: CreateEnrollmentTokenRequest) {
  const token = await callApi(apiRoutes.createEnrollmentToken, { body });
  await mutate(enrollmentTokensKey);
  return token;
}

/** Revokes a token so no device can enroll with it any more, and refreshes the list. */
export async function revokeEnrollmentToken(tokenId: string) {
  const token = await callApi(apiRoutes.revokeEnrollmentToken, { params: { tokenId } });
  await mutate(enrollmentTokensKey);
  return token;
}
