import { randomUUID } from "node:crypto";
import { type TestDatabase, createTestDatabase, resetTables } from "../test";

// Proves the committed SQL migrations create exactly what the generated client expects:
// every model is written with every field and read back intact.

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  await resetTables(database.db);
});
afterAll(() => database.close());

const at = new Date("2026-11-25T10:00:00.123Z");

it("round-trips every model through the migrated database", async () => {
  const { db } = database;
  const enrollmentToken = {
    id: randomUUID(),
    secretHash: "a".repeat(64),
    label: "lbl",
    maxUses: 3,
    usedCount: 1,
    expiresAt: at,
    revokedAt: at,
    createdAt: at,
    createdBy: "admin",
  };
  expect(await db.enrollmentToken.create({ data: enrollmentToken })).toEqual(enrollmentToken);

  const device = {
    id: randomUUID(),
    tokenHash: "b".repeat(64),
    legacyId: "legacy-1",
    enrollmentTokenId: enrollmentToken.id,
    model: "TC52",
    manufacturer: "Zebra",
    osVersion: "11",
    sdkInt: 30,
    appVersion: "1.0",
    serialNumber: "SN1",
    fcmToken: "fcm",
    fcmTokenInvalidAt: at,
    alias: "Till 3",
    notes: "by the door",
    enrolledAt: at,
    lastSeenAt: at,
    batteryLevel: 50,
    batteryCharging: true,
    memoryTotal: 8_000_000_000n,
    memoryAvailable: 1n,
    storageTotal: 2n ** 40n,
    storageAvailable: 0n,
    networkType: "wifi",
    networkSignal: -60,
    ipAddress: "10.0.0.1",
    uptimeSeconds: 99n,
    deviceTime: at,
    appStatus: [{ packageName: "com.a.b", running: true }],
    appsReportedAt: new Date("2026-11-25T10:00:00.000Z"),
    online: true,
    offlineSince: at,
    groups: ["north", "tills"],
    socketInstanceId: "instance-1",
    socketConnectedAt: at,
    socketLeaseExpiresAt: at,
    socketDisconnectedAt: at,
    legacyTokenIssuedAt: at,
    retiredAt: at,
    retiredBy: "admin",
    commandKeyGeneration: 2,
    pendingTokenHash: "c".repeat(64),
    pendingKeyGeneration: 3,
    rotationGraceUntil: at,
    commandMasterKeyId: "1",
    pendingMasterKeyId: "2",
    policyDesired: { kiosk: { homeApp: "com.a.b" } },
    policyDesiredHash: "d".repeat(64),
    policyAppliedHash: "e".repeat(64),
    policyFailures: [{ setting: "kiosk.homeApp", reason: "not installed" }],
    policyReportedAt: at,
  };
  const storedDevice = await db.device.create({ data: device });
  expect(storedDevice).toEqual({ ...device, updatedAt: expect.any(Date) });

  const telemetry = await db.telemetryEvent.create({
    data: {
      deviceId: device.id,
      receivedAt: at,
      deviceTime: at,
      batteryLevel: 1,
      batteryCharging: false,
      memoryTotal: 1n,
      memoryAvailable: 1n,
      storageTotal: 1n,
      storageAvailable: 1n,
      networkType: "cellular",
      appStatus: { a: 1 },
    },
  });
  expect(await db.telemetryEvent.findUniqueOrThrow({ where: { id_receivedAt: { id: telemetry.id, receivedAt: at } } })).toEqual(telemetry);

  const command = {
    requestId: randomUUID(),
    deviceId: device.id,
    type: "install_app" as const,
    payload: { packageName: "com.a.b", url: "https://x" },
    status: "failed" as const,
    createdBy: "admin",
    createdAt: at,
    expiresAt: at,
    sentAt: at,
    acknowledgedAt: at,
    completedAt: at,
    pushOutcome: "token_invalid" as const,
    pushMessageId: "m1",
    pushError: "gone",
    pushAttempts: 2,
    result: { code: 1 },
    errorMessage: "boom",
    batchId: randomUUID(),
    delivery: "both" as const,
    deliveryAttempts: 3,
    nextAttemptAt: at,
  };
  const batch = {
    id: command.batchId,
    type: "install_app" as const,
    payload: command.payload,
    target: { group: "north" },
    total: 1,
    createdBy: "admin",
    createdAt: at,
    doneAt: at,
  };
  expect(await db.commandBatch.create({ data: batch })).toEqual(batch);
  expect(await db.command.create({ data: command })).toEqual(command);
  const event = await db.commandEvent.create({ data: { requestId: command.requestId, status: "cancelled", at, detail: "d" } });
  expect(await db.commandEvent.findUniqueOrThrow({ where: { id: event.id } })).toEqual(event);

  const user = { id: randomUUID(), email: "a@example.com", name: "A", passwordHash: "$2a$10$x", role: "operator" as const, createdAt: at, disabledAt: at };
  expect(await db.user.create({ data: user })).toEqual(user);
  const reset = { id: randomUUID(), userId: user.id, tokenHash: "c".repeat(64), expiresAt: at, usedAt: at, createdAt: at };
  expect(await db.passwordResetToken.create({ data: reset })).toEqual(reset);
  const session = {
    id: randomUUID(),
    userId: user.id,
    refreshHash: "d".repeat(64),
    previousRefreshHash: "e".repeat(64),
    expiresAt: at,
    revokedAt: at,
    createdAt: at,
    lastUsedAt: at,
    ip: "10.0.0.2",
    userAgent: "Mozilla/5.0",
  };
  expect(await db.session.create({ data: session })).toEqual(session);

  const audit = await db.auditLog.create({
    data: { at, actor: "admin", action: "x.y", targetType: "device", targetId: device.id, ip: "::1", details: { k: "v" } },
  });
  expect(await db.auditLog.findUniqueOrThrow({ where: { id: audit.id } })).toEqual(audit);
  const policy = { id: randomUUID(), deviceId: device.id, group: null, packageName: "com.a.b", enabled: false, createdAt: at };
  expect(await db.appPolicy.create({ data: policy })).toEqual(policy);
  const settings = {
    id: 1,
    enabled: false,
    offlineAfterSeconds: 300,
    recipients: ["ops@example.com"],
    groupOfflinePercent: 50,
    cooldownMinutes: 30,
    alertWindowMinutes: 5,
    lowBatteryPercent: 10,
  };
  expect(await db.alertSettings.create({ data: settings })).toEqual({ ...settings, updatedAt: expect.any(Date) });
  const mail = {
    kind: "alert" as const,
    to: ["ops@example.com", "b@example.com"],
    subject: "s",
    text: "t",
    html: "<p>t</p>",
    status: "failed" as const,
    attempts: 8,
    nextAttemptAt: at,
    provider: "smtp",
    providerMessageId: "<id@x>",
    lastError: "550 no",
    createdAt: at,
    finishedAt: at,
  };
  const storedMail = await db.outboxMail.create({ data: mail });
  expect(storedMail).toEqual({ ...mail, id: expect.any(BigInt) });
  const alert = await db.alert.create({
    data: {
      kind: "group_offline",
      deviceId: null,
      group: "north",
      subject: "s",
      recipients: ["ops@example.com"],
      mailId: "m",
      outboxMailId: storedMail.id,
      sentAt: at,
    },
  });
  expect(await db.alert.findUniqueOrThrow({ where: { id: alert.id } })).toEqual(alert);
  // Pruning an outbox row keeps the alert, without its mail.
  await db.outboxMail.delete({ where: { id: storedMail.id } });
  expect(await db.alert.findUniqueOrThrow({ where: { id: alert.id } })).toMatchObject({ outboxMailId: null });
  const incident = {
    id: randomUUID(),
    kind: "low_battery" as const,
    openedAt: at,
    lastJoinedAt: at,
    resolvedAt: at,
    acknowledgedAt: at,
    acknowledgedBy: "a@example.com",
  };
  expect(await db.alertIncident.create({ data: incident })).toEqual(incident);
  const member = { incidentId: incident.id, deviceId: device.id, since: at, returnedAt: at, retired: true, batteryLevel: 7, name: "Till 9" };
  expect(await db.alertIncidentDevice.create({ data: member })).toEqual(member);
  const alertEvent = await db.alertEvent.create({
    data: { kind: "battery_low", deviceId: device.id, incidentId: incident.id, at, batteryLevel: 7, digestedAt: at, alertId: alert.id },
  });
  expect(await db.alertEvent.findUniqueOrThrow({ where: { id: alertEvent.id } })).toEqual(alertEvent);
  await db.alertIncident.delete({ where: { id: incident.id } });
  expect(await db.alertIncidentDevice.count()).toBe(0);
  const nonce = { nonce: "n".repeat(16), expiresAt: at };
  expect(await db.usedNonce.create({ data: nonce })).toEqual(nonce);
  const lease = { name: "offline sweep", holder: "instance-1", lastRunAt: at, nextRunAt: at, runs: 3 };
  expect(await db.jobLease.create({ data: lease })).toEqual(lease);
  const resetRequest = await db.passwordResetRequest.create({ data: { email: "someone@example.com", ip: "::1", userAgent: "curl", requestedAt: at } });
  expect(await db.passwordResetRequest.findUniqueOrThrow({ where: { id: resetRequest.id } })).toEqual(resetRequest);

  const catalogueApp = { packageName: "com.a.b", certSha256: "c".repeat(64), createdAt: at };
  expect(await db.catalogueApp.create({ data: catalogueApp })).toEqual(catalogueApp);
  const appVersion = {
    id: randomUUID(),
    packageName: "com.a.b",
    versionCode: 2_147_483_647,
    versionName: "9.9",
    sha256: "d".repeat(64),
    sizeBytes: 2n ** 33n,
    certSha256: "c".repeat(64),
    certLineage: ["e".repeat(64), "c".repeat(64)],
    uploadedBy: "admin",
    createdAt: at,
  };
  const olderVersion = { ...appVersion, id: randomUUID(), versionCode: 1, versionName: null, certLineage: ["c".repeat(64)], uploadedBy: null };
  expect(await db.appVersion.create({ data: appVersion })).toEqual(appVersion);
  expect(await db.appVersion.create({ data: olderVersion })).toEqual(olderVersion);
  const appRelease = {
    id: randomUUID(),
    packageName: "com.a.b",
    versionId: appVersion.id,
    versionCode: appVersion.versionCode,
    versionName: appVersion.versionName,
    previousVersionId: olderVersion.id,
    previousVersionCode: olderVersion.versionCode,
    target: { group: "north" },
    percent: 25,
    status: "paused" as const,
    autoAdvance: true,
    maxFailurePercent: 10,
    createdBy: "admin",
    createdAt: at,
    updatedAt: at,
  };
  expect(await db.appRelease.create({ data: appRelease })).toEqual(appRelease);
  const releaseDevice = {
    releaseId: appRelease.id,
    deviceId: device.id,
    versionId: appVersion.id,
    versionCode: appVersion.versionCode,
    requestId: command.requestId,
    sentAt: at,
    fromVersionCode: olderVersion.versionCode,
    rollbackSkipped: "its install of version 2 failed (INSTALL_FAILED_INSUFFICIENT_STORAGE): it runs what it ran before",
  };
  expect(await db.appReleaseDevice.create({ data: releaseDevice })).toEqual(releaseDevice);
  // Cascades: deleting an app removes its versions, releases and their devices.
  await db.catalogueApp.delete({ where: { packageName: "com.a.b" } });
  expect(await db.appReleaseDevice.count()).toBe(0);
  expect(await db.appVersion.count()).toBe(0);

  // Cascades: deleting a user removes their reset tokens and sessions.
  await db.user.delete({ where: { id: user.id } });
  expect(await db.passwordResetToken.count()).toBe(0);
  expect(await db.session.count()).toBe(0);

  // Cascades: deleting the device removes its telemetry, commands and their events.
  await db.device.delete({ where: { id: device.id } });
  expect(await db.telemetryEvent.count()).toBe(0);
  expect(await db.commandEvent.count()).toBe(0);
  expect(await db.appPolicy.count()).toBe(0);
});
