/** @jest-environment jsdom */
import { DevicePolicyView } from "@mdm/contracts";
import { fireEvent, render, screen } from "@testing-library/react";
import { PolicyEditor } from "./policy-editor";

const policy = DevicePolicyView.parse({
  id: "3f6c2a1e-8b4d-4c7a-9e21-5d0b7f9a2c44",
  name: "Store kiosk",
  description: null,
  version: 3,
  settings: {
    kiosk: { homeApp: "com.example.kiosk", statusBar: false },
    screen: { timeoutSeconds: 600, orientationLock: "landscape" },
    requiredApps: [{ packageName: "com.example.kiosk", minVersionCode: 210 }],
    autoRelaunch: ["com.example.kiosk"],
  },
  assignments: [],
  createdAt: "2026-11-30T09:00:00.000Z",
  updatedAt: "2026-11-30T10:00:00.000Z",
  updatedBy: "ops@example.com",
});

const field = (path: string) => document.getElementById(`policy-${path.replace(/\./g, "-")}`) as HTMLInputElement | HTMLSelectElement | null;

describe("the policy editor", () => {
  test("shows a field for every setting of the schema, filled from the document", () => {
    render(<PolicyEditor policy={policy} editable />);
    expect((screen.getByLabelText("Name") as HTMLInputElement).value).toBe("Store kiosk");
    expect(field("kiosk.homeApp")?.value).toBe("com.example.kiosk");
    expect(field("kiosk.statusBar")?.value).toBe("false");
    expect(field("screen.timeoutSeconds")?.value).toBe("600");
    expect(field("screen.orientationLock")?.value).toBe("landscape");
    // Settings the document leaves out are offered, unset.
    expect(field("restrictions.camera")?.value).toBe("");
    expect(field("kiosk.notifications")?.value).toBe("");
  });

  test("writes abbreviations as such and shows names in descriptions as code, not backticks", () => {
    render(<PolicyEditor policy={policy} editable />);
    expect(screen.getByLabelText("USB file transfer")).toBeTruthy();
    expect(screen.queryByText(/Usb/)).toBeNull();
    expect(screen.getByTestId("policy-editor").textContent).not.toContain("`");
    expect(screen.getAllByText("true", { selector: "code" })).toHaveLength(1);
  });

  test("edits a setting in place and lets a viewer only read", () => {
    const { unmount } = render(<PolicyEditor policy={policy} editable />);
    fireEvent.change(field("restrictions.camera")!, { target: { value: "false" } });
    expect(field("restrictions.camera")?.value).toBe("false");
    fireEvent.change(field("screen.timeoutSeconds")!, { target: { value: "" } });
    expect(field("screen.timeoutSeconds")?.value).toBe("");
    unmount();

    render(<PolicyEditor policy={policy} editable={false} />);
    expect(field("kiosk.homeApp")?.hasAttribute("disabled")).toBe(true);
    expect(field("restrictions.camera")?.hasAttribute("disabled")).toBe(true);
  });

  test("shows the server's warnings about required apps the catalogue cannot satisfy", () => {
    const message = "The app catalogue has no version of it: upload version 210 or later of com.example.kiosk";
    render(<PolicyEditor policy={{ ...policy, warnings: [{ path: "requiredApps.com.example.kiosk", message }] }} editable />);
    expect(screen.getByTestId("policy-warnings").textContent).toBe(message);
  });

  test("shows no warnings when there are none", () => {
    render(<PolicyEditor policy={policy} editable />);
    expect(screen.queryByTestId("policy-warnings")).toBeNull();
  });
});
