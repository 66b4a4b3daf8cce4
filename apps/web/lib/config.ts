/** The API's base URL: the target of the /api, /admin and /auth rewrites and of the live socket. */
export const apiUrl = (process.env.NEXT_PUBLIC_API_URL || "http://127.0.0.1:8000").replace(/\/+$/, "");

/** The dashboard WebSocket endpoint on the API. */
export const dashboardSocketUrl = `${apiUrl.replace(/^http/, "ws")}/ws/dashboard`;
