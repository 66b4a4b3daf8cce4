import { safeNextPath } from "./safe-next-path";

const ORIGIN = "https://mdm.example.com";

describe("safeNextPath", () => {
  test("keeps a path on the dashboard, with its query and fragment", () => {
    expect(safeNextPath("/devices/42?tab=commands#recent", ORIGIN)).toBe("/devices/42?tab=commands#recent");
    expect(safeNextPath(`${ORIGIN}/audit-log`, ORIGIN)).toBe("/audit-log");
  });

  test("falls back to the overview without a next", () => {
    expect(safeNextPath(null, ORIGIN)).toBe("/");
    expect(safeNextPath("", ORIGIN)).toBe("/");
  });

  test.each([
    ["another origin", "https://evil.example/"],
    ["a protocol-relative URL", "//evil.example"],
    // `?next=/%5Cevil.example`: browsers read a backslash as a slash.
    ["a backslash after the slash", "/\\evil.example"],
    ["backslashes only", "\\\\evil.example"],
    ["a tab the URL parser strips", "/\t/evil.example"],
    ["a javascript: URL", "javascript:alert(document.cookie)"],
    ["another port", "https://mdm.example.com:8443/"],
    ["plain http", "http://mdm.example.com/"],
  ])("refuses %s", (_name, next) => {
    expect(safeNextPath(next, ORIGIN)).toBe("/");
  });

  test("never returns a path a router would read as another host", () => {
    expect(safeNextPath("/.//evil.example", ORIGIN)).toBe("/evil.example");
  });
});
