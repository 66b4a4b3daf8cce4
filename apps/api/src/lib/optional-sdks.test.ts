import { generateKeyPairSync } from "node:crypto";
import os from "node:os";
import type { Env } from "../config/env";

// The optional providers' SDKs (mail, push, the APK bucket) are loaded once a provider is
// configured, not at every start: loading the built server's modules took 0.90-0.95 s and
// 122 MB of RSS with all four, 0.81-0.82 s and 115-117 MB without. Each module is loaded
// here in a fresh registry, where every SDK records being loaded.
const SDKS = ["@aws-sdk/client-s3", "firebase-admin", "firebase-admin/app", "firebase-admin/messaging", "nodemailer", "resend"];

function sdksLoadedBy(work: () => void): string[] {
  const loaded: string[] = [];
  try {
    jest.isolateModules(() => {
      for (const sdk of SDKS) {
        jest.doMock(sdk, () => {
          loaded.push(sdk);
          return jest.requireActual(sdk);
        });
      }
      work();
    });
  } finally {
    for (const sdk of SDKS) jest.dontMock(sdk);
  }
  return loaded;
}

const mailer = () => require("../mail/mailer") as typeof import("../mail/mailer");
const push = () => require("../push/create-push-gateway") as typeof import("../push/create-push-gateway");
const catalogue = () => require("../modules/catalogue/catalogue.routes") as typeof import("../modules/catalogue/catalogue.routes");
const MAIL_FROM = "MDM <mdm@example.com>";

describe("optional SDKs", () => {
  it("are not loaded by the server's modules, nor by the factories without their settings", () => {
    const loaded = sdksLoadedBy(() => {
      require("../server");
      expect(mailer().createMailer({ MAIL_FROM })).toBeUndefined();
      expect(push().createPushGateway({} as Env).name).toBe("local");
      catalogue().apkStoreOf({ DATA_DIR: os.tmpdir() } as Env);
    });
    expect(loaded).toEqual([]);
  });

  it("are each loaded by the factory of a configured provider", async () => {
    expect(sdksLoadedBy(() => expect(mailer().createMailer({ RESEND_API_KEY: "re_test", MAIL_FROM })?.name).toBe("resend"))).toEqual(["resend"]);
    expect(sdksLoadedBy(() => expect(mailer().createMailer({ SMTP_URL: "smtp://127.0.0.1:2525", MAIL_FROM })?.name).toBe("smtp"))).toEqual(["nodemailer"]);

    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const serviceAccountJson = JSON.stringify({
      type: "service_account",
      project_id: "mdm-test",
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
      client_email: "push@mdm-test.iam.gserviceaccount.com",
    });
    let gateway: import("../push/push-gateway").PushGateway | undefined;
    expect(sdksLoadedBy(() => (gateway = push().createPushGateway({ FIREBASE_SERVICE_ACCOUNT_JSON: serviceAccountJson } as Env)))).toEqual([
      "firebase-admin/app",
      "firebase-admin/messaging",
    ]);
    expect(gateway?.name).toBe("fcm");
    await (gateway as import("../push/fcm-push-gateway").FcmPushGateway).close();

    const s3 = { DATA_DIR: os.tmpdir(), APK_STORAGE_S3_BUCKET: "apks", APK_STORAGE_S3_REGION: "us-east-1" } as Env;
    expect(sdksLoadedBy(() => catalogue().apkStoreOf(s3))).toEqual(["@aws-sdk/client-s3"]);
  });
});
