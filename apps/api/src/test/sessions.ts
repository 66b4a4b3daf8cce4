import { randomUUID } from "node:crypto";
import type { UserRole } from "@mdm/contracts";
import bcrypt from "bcryptjs";
import type { Express } from "express";
import request from "supertest";
import type { Db } from "../db/client";
import { TEST_BCRYPT_COST, type TestApp } from "./test-app";

export const TEST_PASSWORD = "correct horse battery staple";

export async function createUser(db: Db, options: { email?: string; role?: UserRole; password?: string | null; disabled?: boolean; name?: string } = {}) {
  const password = options.password === undefined ? TEST_PASSWORD : options.password;
  return db.user.create({
    data: {
      id: randomUUID(),
      email: options.email ?? `${randomUUID().slice(0, 8)}@example.com`,
      name: options.name ?? null,
      role: options.role ?? "viewer",
      passwordHash: password === null ? "" : await bcrypt.hash(password, Number(TEST_BCRYPT_COST)),
      disabledAt: options.disabled ? new Date() : null,
    },
  });
}

/** The cookies a response set, by name (values as sent; an empty value means "cleared"). */
export function setCookies(res: request.Response): Record<string, { value: string; attributes: string }> {
  const header = res.headers["set-cookie"] as unknown as string[] | undefined;
  return Object.fromEntries(
    (header ?? []).map((line) => {
      const [pair, ...attributes] = line.split(";");
      const equals = pair!.indexOf("=");
      return [pair!.slice(0, equals), { value: decodeURIComponent(pair!.slice(equals + 1)), attributes: attributes.join(";").trim() }];
    }),
  );
}

/** What a signed-in browser holds. */
export type SignedIn = {
  access: string;
  refresh: string;
  csrf: string;
  userId: string;
  /** The `Cookie` header a browser would send to /auth/* (all three cookies). */
  cookie: string;
};

export function signedInFrom(res: request.Response): SignedIn {
  const cookies = setCookies(res);
  const access = cookies.mdm_session!.value;
  const refresh = cookies.mdm_refresh?.value ?? "";
  const csrf = cookies.mdm_csrf!.value;
  return { access, refresh, csrf, userId: res.body.user.id, cookie: cookieHeader({ access, refresh, csrf }) };
}

export function cookieHeader(parts: { access?: string; refresh?: string; csrf?: string }): string {
  return [parts.access && `mdm_session=${parts.access}`, parts.refresh && `mdm_refresh=${parts.refresh}`, parts.csrf && `mdm_csrf=${parts.csrf}`]
    .filter(Boolean)
    .join("; ");
}

export async function signIn(app: Express, email: string, password = TEST_PASSWORD): Promise<SignedIn> {
  const res = await request(app).post("/auth/login").send({ email, password });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${JSON.stringify(res.body)}`);
  return signedInFrom(res);
}

/** Creates a user of the role and signs them in. */
export async function signedInUser(t: TestApp, role: UserRole = "admin", email?: string): Promise<SignedIn & { email: string }> {
  const user = await createUser(t.deps.db, { role, email });
  return { ...(await signIn(t.app, user.email)), email: user.email };
}

/** A request as the dashboard sends it: the cookies, and the CSRF header on writes. */
export function asBrowser(app: Express, session: SignedIn, method: "get" | "post" | "patch" | "delete", path: string) {
  const call = request(app)[method](path).set("Cookie", session.cookie);
  return method === "get" ? call : call.set("X-CSRF-Token", session.csrf);
}
