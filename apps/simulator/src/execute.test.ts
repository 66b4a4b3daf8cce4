import type { AppStatus } from "@mdm/contracts";
import { DEFAULT_POSITION, executeCommand } from "./execute";
import { KIOSK_APP } from "./telemetry";

const kiosk: AppStatus = { packageName: KIOSK_APP, versionCode: 210, running: false, foreground: false };

describe("executeCommand", () => {
  it("answers a ping with pong", () => {
    expect(executeCommand({ type: "ping", payload: {} }, [kiosk]).outcome).toEqual({ status: "succeeded", result: { pong: true } });
  });

  it.each(["launch_app", "relaunch_app"] as const)("%s starts the app in the foreground", (type) => {
    const { outcome, apps } = executeCommand({ type, payload: { packageName: KIOSK_APP } }, [kiosk]);
    expect(outcome.status).toBe("succeeded");
    expect(apps).toEqual([{ ...kiosk, running: true, foreground: true }]);
  });

  it("installs and uninstalls apps", () => {
    const installed = executeCommand(
      { type: "install_app", payload: { packageName: "com.example.pos", url: "https://example.com/pos.apk", sha256: "0f".repeat(32), versionCode: 7 } },
      [kiosk],
    );
    expect(installed.apps.map((app) => [app.packageName, app.versionCode])).toEqual([
      [KIOSK_APP, 210],
      ["com.example.pos", 7],
    ]);
    const removed = executeCommand({ type: "uninstall_app", payload: { packageName: "com.example.pos" } }, installed.apps);
    expect(removed.outcome.status).toBe("succeeded");
    expect(removed.apps).toEqual([kiosk]);
  });

  it("fails app commands for an app that is not installed, changing nothing", () => {
    for (const type of ["launch_app", "relaunch_app", "clear_app_data", "uninstall_app"] as const) {
      const execution = executeCommand({ type, payload: { packageName: "com.example.missing" } }, [kiosk]);
      expect(execution.outcome).toEqual({ status: "failed", error: "com.example.missing is not installed" });
      expect(execution.apps).toEqual([kiosk]);
    }
  });

  it("asks for a reboot, locks, clears data and echoes custom actions", () => {
    expect(executeCommand({ type: "reboot", payload: {} }, [kiosk])).toMatchObject({ reboot: true, outcome: { status: "succeeded" } });
    expect(executeCommand({ type: "lock", payload: { message: "Closed" } }, [kiosk]).outcome.status).toBe("succeeded");
    expect(executeCommand({ type: "clear_app_data", payload: { packageName: KIOSK_APP } }, [kiosk]).outcome.status).toBe("succeeded");
    expect(executeCommand({ type: "custom", payload: { action: "sync", data: { full: true } } }, [kiosk]).outcome).toEqual({
      status: "succeeded",
      result: { action: "sync", data: { full: true } },
    });
  });

  it("fails a payload the contract refuses instead of guessing", () => {
    expect(executeCommand({ type: "launch_app", payload: { packageName: "not a package" } }, [kiosk]).outcome.status).toBe("failed");
  });
});

describe("executeCommand: lifecycle commands", () => {
  it("wipe and factory_reset report success and ask the device to erase itself", () => {
    expect(executeCommand({ type: "wipe", payload: {} }, [kiosk])).toMatchObject({ outcome: { status: "succeeded", result: { wiped: true } }, erase: true });
    expect(executeCommand({ type: "factory_reset", payload: { reason: "resale" } }, [kiosk])).toMatchObject({
      outcome: { status: "succeeded", result: { reset: true } },
      erase: true,
    });
  });

  it("lost_mode enters with the message and phone number, and exits", () => {
    const entered = executeCommand({ type: "lost_mode", payload: { action: "enter", message: "Return me", phoneNumber: "+1 555 0100" } }, [kiosk]);
    expect(entered).toMatchObject({
      outcome: { status: "succeeded", result: { lostMode: true } },
      lostMode: { message: "Return me", phoneNumber: "+1 555 0100" },
    });
    expect(executeCommand({ type: "lost_mode", payload: { action: "exit" } }, [kiosk])).toMatchObject({
      outcome: { result: { lostMode: false } },
      lostMode: null,
    });
  });

  it("locate reports the device's position, by default DEFAULT_POSITION", () => {
    expect(executeCommand({ type: "locate", payload: {} }, [kiosk]).outcome).toMatchObject({ status: "succeeded", result: DEFAULT_POSITION });
    const elsewhere = { latitude: 1.5, longitude: -2.5, accuracyMeters: 30 };
    expect(executeCommand({ type: "locate", payload: {} }, [kiosk], elsewhere).outcome).toMatchObject({ result: elsewhere });
  });
});
