import type { Env } from "../config/env";
import { LocalPushGateway } from "./local-push-gateway";
import type { PushGateway } from "./push-gateway";

export function createPushGateway(env: Env): PushGateway {
  if (!env.FIREBASE_SERVICE_ACCOUNT_JSON) return new LocalPushGateway();
  // firebase-admin is loaded only with credentials to use it (see optional-sdks.test.ts).
  const { FcmPushGateway } = require("./fcm-push-gateway") as typeof import("./fcm-push-gateway");
  return new FcmPushGateway({ serviceAccountJson: env.FIREBASE_SERVICE_ACCOUNT_JSON });
}
