import { type CreateReleaseRequest, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi, uploadToApi } from "@/lib/api";

export const appsKey = apiPath(apiRoutes.listApps);

/** The app catalogue: apps with their versions and releases (with rollout progress). */
export function useApps() {
  return useSWR(appsKey, () => callApi(apiRoutes.listApps), { refreshInterval: 5000 });
}

export async function uploadApk(file: File) {
  const uploaded = await uploadToApi(apiRoutes.uploadApp, "file", file);
  await mutate(appsKey);
  return uploaded;
}

export async function createRelease(packageName: string, body: CreateReleaseRequest) {
  const release = await callApi(apiRoutes.createRelease, { params: { packageName }, body });
  await mutate(appsKey);
  return release;
}

export type ReleaseAction = "advance" | "pause" | "resume" | "rollback";

export async function changeRelease(releaseId: string, action: ReleaseAction) {
  const params = { releaseId };
  const release =
    action === "advance"
      ? await callApi(apiRoutes.advanceRelease, { params, body: {} })
      : action === "pause"
        ? await callApi(apiRoutes.pauseRelease, { params })
        : action === "resume"
          ? await callApi(apiRoutes.resumeRelease, { params })
          : await callApi(apiRoutes.rollbackRelease, { params });
  await mutate(appsKey);
  return release;
}

export async function deleteAppVersion(packageName: string, versionCode: number) {
  await callApi(apiRoutes.deleteAppVersion, { params: { packageName, versionCode: String(versionCode) } });
  await mutate(appsKey);
}

export async function deleteApp(packageName: string) {
  await callApi(apiRoutes.deleteApp, { params: { packageName } });
  await mutate(appsKey);
}
