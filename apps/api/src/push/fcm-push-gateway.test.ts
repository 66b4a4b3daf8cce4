import { FAKE_FCM_ACCESS_TOKEN, FAKE_FCM_PROJECT_ID, type FakeFcm, startFakeFcm } from "../test/fake-fcm";
import type { FcmPushGateway } from "./fcm-push-gateway";

// These run the real firebase-admin SDK; only the network endpoint and the OAuth token are fake.
describe("FcmPushGateway", () => {
  let fcm: FakeFcm;
  let gateway: FcmPushGateway;

  beforeAll(async () => {
    fcm = await startFakeFcm();
    gateway = fcm.createGateway();
  });

  afterAll(async () => {
    await fcm.close();
  });

  beforeEach(() => {
    fcm.requests.length = 0;
  });

  it("sends a high-priority data message through FCM v1", async () => {
    const data = { commandId: "cmd-1", type: "LOCK", nonce: "a b=c" };

    const result = await gateway.send({ token: "device-token-1", data, ttlSeconds: 90 });

    expect(result).toEqual({ ok: true, outcome: "sent", messageId: expect.stringMatching(/^projects\/mdm-test\/messages\/\d+$/) });
    expect(fcm.requests).toHaveLength(1);
    const [request] = fcm.requests;
    expect(request?.path).toBe(`/v1/projects/${FAKE_FCM_PROJECT_ID}/messages:send`);
    expect(request?.headers.authorization).toBe(`Bearer ${FAKE_FCM_ACCESS_TOKEN}`);
    const message = request?.body.message;
    expect(message?.token).toBe("device-token-1");
    expect(message?.data).toEqual(data);
    expect(message?.android).toMatchObject({ priority: "high", ttl: "90s" });
  });

  it("reports an unregistered token as invalid", async () => {
    fcm.failToken("gone-token", "unregistered");

    const result = await gateway.send({ token: "gone-token", data: { type: "PING" }, ttlSeconds: 60 });

    expect(result).toEqual({
      ok: false,
      reason: "token_invalid",
      error: expect.stringContaining("messaging/registration-token-not-registered"),
    });
  });

  it("reports a server error as a plain failure, without retrying", async () => {
    fcm.failToken("unlucky-token", "server_error");

    const result = await gateway.send({ token: "unlucky-token", data: { type: "PING" }, ttlSeconds: 60 });

    expect(result).toEqual({ ok: false, reason: "failed", error: expect.stringContaining("messaging/internal-error") });
    expect(fcm.requests).toHaveLength(1);
  });
});
