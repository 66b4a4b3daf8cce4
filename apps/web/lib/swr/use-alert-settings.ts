import { type UpdateAlertSettingsRequest, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export const alertSettingsKey = apiPath(apiRoutes.getAlertSettings);

export function useAlertSettings() {
  return useSWR(alertSettingsKey, () => callApi(apiRoutes.getAlertSettings));
}

export async function updateAlertSettings(body: UpdateAlertSettingsRequest) {
  const settings = await callApi(apiRoutes.updateAlertSettings, { body });
  await mutate(alertSettingsKey, settings, { revalidate: false });
  return settings;
}
