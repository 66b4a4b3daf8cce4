import type { apiRoutes } from "./routes";

// A request body for every route that takes one, shown in the API reference: real-looking
// ids and sensible values. Each parses with its route's schema (openapi.test.ts checks).

const DEVICE_ID = "3f6c2a1e-8b4d-4c7a-9e21-5d0b7f9a2c44";
const REQUEST_ID = "b1e7c9d2-4a3f-4f6e-8c1b-2d9e0a7f5c31";
const DEVICE_TOKEN_ID = "7a2d4e6f-1b3c-4d5e-8f9a-0b1c2d3e4f5a";

const heartbeat = {
  deviceTime: "2026-11-30T09:15:00.000Z",
  battery: { level: 76, charging: false },
  memory: { total: 4_000_000_000, available: 1_450_000_000 },
  storage: { total: 64_000_000_000, available: 21_300_000_000 },
  network: { type: "wifi", signal: -58, ip: "10.20.4.17" },
  apps: [{ packageName: "com.acme.pos", versionName: "4.2.1", versionCode: 421, running: true, foreground: true }],
  uptimeSeconds: 86_400,
};

export const requestExamples: Partial<Record<keyof typeof apiRoutes, unknown>> = {
  register: {
    enrollmentToken: `${DEVICE_TOKEN_ID}.Xq3vW9yZb2Lk8sT1uE4rN6pA0cD7fH5jG2mK9oQ1wR8`,
    device: {
      model: "TC52",
      manufacturer: "Zebra",
      osVersion: "11",
      sdkInt: 30,
      appVersion: "1.4.0",
      serialNumber: "19235522501234",
      fcmToken: "dQw4w9WgXcQ:APA91bH-example-token",
    },
  },
  heartbeat,
  actionResult: { requestId: REQUEST_ID, status: "succeeded", result: { pong: true } },
  legacyHeartbeat: { deviceId: "store-042-kiosk-1", device: { model: "Lenovo M10" }, ...heartbeat },
  createEnrollmentToken: { label: "Store 42 rollout", maxUses: 25, expiresInSeconds: 604_800 },
  createDevicePolicy: {
    name: "Store kiosk",
    settings: {
      kiosk: {
        lockTaskPackages: ["com.example.kiosk"],
        homeApp: "com.example.kiosk",
        statusBar: false,
        notifications: false,
        homeKey: false,
        recentsKey: false,
      },
      restrictions: {
        camera: false,
        usbFileTransfer: false,
        debugging: false,
        factoryReset: false,
        safeMode: false,
        addUsers: false,
        installUnknownApps: false,
      },
      screen: { timeoutSeconds: 600, orientationLock: "landscape", keepAwakeWhileCharging: true },
      systemUpdate: { type: "windowed", startMinute: 120, endMinute: 240 },
      requiredApps: [{ packageName: "com.example.kiosk", minVersionCode: 210 }],
      autoRelaunch: ["com.example.kiosk"],
    },
  },
  updateDevicePolicy: { settings: { screen: { timeoutSeconds: 300 } }, expectedVersion: 3 },
  createPolicyAssignment: { group: "stores", priority: 10 },
  enrollmentProvisioning: {
    enrollmentToken: "0b7e6a52-1f0e-4f6c-9a55-3f1d2a7c9e10.Zk3xQ2v9bWm8T1pLr5sYc7uJd0fHq4eNa6gKw2oXi3E",
    wifi: { ssid: "Store-42", securityType: "WPA", password: "correct horse battery" },
  },
  updateDevice: { alias: "Store 42 · till 1", notes: "Mounted by the entrance", groups: ["store-42", "tills"] },
  createCommand: { deviceId: DEVICE_ID, type: "relaunch_app", payload: { packageName: "com.acme.pos" }, ttlSeconds: 3600 },
  createRelease: { versionCode: 12, target: { group: "store-42" }, percent: 5, autoAdvance: true, maxFailurePercent: 5 },
  advanceRelease: { percent: 25, reason: "no crashes in a day at 5%" },
  createBulkCommand: { target: { group: "store-42" }, type: "lock", payload: { message: "Closed for inventory" } },
  createPolicy: { group: "tills", packageName: "com.acme.pos" },
  updateAlertSettings: {
    enabled: true,
    offlineAfterSeconds: 300,
    recipients: ["ops@acme.example"],
    groupOfflinePercent: 50,
    cooldownMinutes: 30,
    alertWindowMinutes: 15,
    lowBatteryPercent: 15,
  },
  setup: { email: "admin@acme.example", password: "correct horse battery staple", name: "Ada Admin" },
  login: { email: "admin@acme.example", password: "correct horse battery staple" },
  requestPasswordReset: { email: "ops@acme.example" },
  checkPasswordReset: { token: `${DEVICE_TOKEN_ID}.Hk2sP8qW1eR5tY7uI9oL3aS6dF4gJ0zX2cV8bN1mQ5w` },
  bulkEditDevices: { target: { group: "store-42" }, addGroups: ["tills"], aliasPrefix: "store-42-till-" },
  updatePolicy: { enabled: false },
  confirmPasswordReset: { token: `${DEVICE_TOKEN_ID}.Hk2sP8qW1eR5tY7uI9oL3aS6dF4gJ0zX2cV8bN1mQ5w`, password: "a brand new passphrase" },
  inviteUser: { email: "sam@acme.example", name: "Sam Operator", role: "operator" },
  updateUser: { role: "viewer" },
  createWebhook: {
    url: "https://hooks.acme.example/mdm",
    events: ["device.offline", "device.online", "command.status_changed"],
    description: "On-call paging",
  },
  createApiKey: { name: "ticketing-sync", role: "operator", expiresAt: "2027-12-31T23:59:59Z", allowedCidrs: ["203.0.113.0/24", "2001:db8::/32"] },
};
