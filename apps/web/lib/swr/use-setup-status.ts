import { authRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export const setupStatusKey = apiPath(authRoutes.getSetupStatus);

/** Whether the server still needs its first admin (GET /auth/setup). */
export function useSetupStatus() {
  return useSWR(setupStatusKey, () => callApi(authRoutes.getSetupStatus), { revalidateOnFocus: false });
}
