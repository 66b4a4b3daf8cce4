import type { Env } from "../config/env";
import { FcmPushGateway } from "./fcm-push-gateway";
import { LocalPushGateway } from "./local-push-gateway";
import type { PushGateway } from "./push-gateway";

export function createPushGateway(env: Env): PushGateway {
  if (env.FIREBASE_SERVICE_ACCOUNT_JSON) return new FcmPushGateway({ serviceAccountJson: env.FIREBASE_SERVICE_ACCOUNT_JSON });
  return new LocalPushGateway();
}
