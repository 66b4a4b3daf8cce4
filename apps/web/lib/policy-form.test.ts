import { codeSpans, labelOf, policySections, readPath, writePath, parseRequiredApps, formatRequiredApps } from "./policy-form";

describe("policy form built from the contract schema", () => {
  it("has a field for every setting of the kiosk, restrictions and screen sections, of the kind its schema says", () => {
    const sections = policySections();
    expect(sections.map((section) => section.key)).toEqual(["kiosk", "restrictions", "screen"]);
    const fields = Object.fromEntries(sections.flatMap((section) => section.fields.map((field) => [field.path, field])));
    expect(fields["kiosk.lockTaskPackages"]).toMatchObject({ kind: "packages", label: "Lock task packages" });
    expect(fields["restrictions.camera"]).toMatchObject({ kind: "boolean" });
    expect(fields["screen.timeoutSeconds"]).toMatchObject({ kind: "number", min: 5, max: 86_400 });
    expect(fields["screen.orientationLock"]).toMatchObject({ kind: "enum", options: ["none", "portrait", "landscape"] });
    expect(sections.find((section) => section.key === "restrictions")!.fields).toHaveLength(7);
  });

  it("labels settings in words, abbreviations in capitals, and finds the code in descriptions", () => {
    expect(labelOf("usbFileTransfer")).toBe("USB file transfer");
    expect(labelOf("installUnknownApps")).toBe("Install unknown apps");
    expect(codeSpans("Each `true` allows, `false` forbids")).toEqual([
      { text: "Each ", code: false },
      { text: "true", code: true },
      { text: " allows, ", code: false },
      { text: "false", code: true },
      { text: " forbids", code: false },
    ]);
  });

  it("sets and unsets settings by path, dropping emptied sections", () => {
    let doc = writePath({}, "screen.brightness", 40);
    expect(readPath(doc, "screen.brightness")).toBe(40);
    doc = writePath(doc, "screen.brightness", undefined);
    expect(doc).toEqual({});
  });

  it("reads required apps as package:version lines", () => {
    const apps = parseRequiredApps("com.example.kiosk:210\n\n com.example.scanner 5 ");
    expect(apps).toEqual([
      { packageName: "com.example.kiosk", minVersionCode: 210 },
      { packageName: "com.example.scanner", minVersionCode: 5 },
    ]);
    expect(formatRequiredApps(apps)).toBe("com.example.kiosk:210\ncom.example.scanner:5");
  });
});
