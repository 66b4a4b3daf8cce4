import { devicePageId } from "./device-exists";

describe("devicePageId", () => {
  it.each([
    ["/devices/00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000000"],
    ["/devices/abc/", "abc"],
    ["/devices/a%20b", "a b"],
    ["/devices/%E0%A4%A", null],
    ["/devices", undefined],
    ["/devices/abc/edit", undefined],
    ["/commands", undefined],
  ])("%p → %p", (pathname, id) => {
    expect(devicePageId(pathname)).toBe(id);
  });
});
