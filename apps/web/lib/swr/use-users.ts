import { type InviteUserRequest, type UpdateUserRequest, authRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export const usersKey = apiPath(authRoutes.listUsers);

/** The users; nothing is asked for when `enabled` is false (a non-admin would only get 403). */
export function useUsers(enabled = true) {
  return useSWR(enabled ? usersKey : null, () => callApi(authRoutes.listUsers));
}

/** Creates the account and queues a mail with a link to choose a password (only recorded without a mail provider). */
export async function inviteUser(body: InviteUserRequest) {
  const user = await callApi(authRoutes.inviteUser, { body });
  await mutate(usersKey);
  return user;
}

export async function updateUser(userId: string, body: UpdateUserRequest) {
  const user = await callApi(authRoutes.updateUser, { params: { userId }, body });
  await mutate(usersKey);
  return user;
}
