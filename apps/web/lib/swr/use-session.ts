import { type LoginRequest, authRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";
import { isRateLimited, onErrorRetry } from "./retry";

export const sessionKey = apiPath(authRoutes.me);

/**
 * The signed-in user (GET /auth/me); a 401 error means nobody is signed in. Read outside the
 * shell's SWRConfig: a failure shows at once (with a retry), but a 429 is read again after its
 * Retry-After.
 */
export function useSession() {
  return useSWR(sessionKey, () => callApi(authRoutes.me), { shouldRetryOnError: isRateLimited, onErrorRetry });
}

export async function signIn(body: LoginRequest) {
  const session = await callApi(authRoutes.login, { body });
  // Whatever another user left in the cache must not show for this one.
  await mutate(() => true, undefined, { revalidate: false });
  await mutate(sessionKey, session.user, { revalidate: false });
  return session;
}

export async function signOut() {
  try {
    await callApi(authRoutes.logout);
  } finally {
    await mutate(() => true, undefined, { revalidate: false });
  }
}
