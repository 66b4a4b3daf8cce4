import { ListDevicesQuery } from "@mdm/contracts";
import { changeDeviceListParams, deviceListQuery, deviceListSearch, readDeviceListParams } from "./use-device-list-params";

const CURSOR_2 = "eyJrIjoiMjAyNi0xMS0zMCIsImlkIjoiYSJ9";
const CURSOR_3 = "eyJrIjoiMjAyNi0xMS0yOSIsImlkIjoiYiJ9";

describe("device list paging by cursor", () => {
  it("asks the API for the first page without cursor or offset", () => {
    const query = deviceListQuery(readDeviceListParams(new URLSearchParams("sort=lastSeenAt")));
    expect(query).toMatchObject({ limit: 50, sort: "lastSeenAt", order: "desc" });
    expect(query).not.toHaveProperty("cursor");
    expect(query).not.toHaveProperty("offset");
    expect(ListDevicesQuery.safeParse(query).success).toBe(true);
  });

  it("opens a later page with the nextCursor of the page before it, never an offset", () => {
    const params = readDeviceListParams(new URLSearchParams(`sort=batteryLevel&order=asc&after=${CURSOR_2}.${CURSOR_3}`));
    expect(params.cursors).toEqual([CURSOR_2, CURSOR_3]);
    const query = deviceListQuery(params);
    expect(query).toMatchObject({ cursor: CURSOR_3, sort: "batteryLevel", order: "asc" });
    expect(query).not.toHaveProperty("offset");
    expect(ListDevicesQuery.safeParse(query).success).toBe(true);
  });

  it("goes forward by appending the cursor and back by dropping the last one, in the URL", () => {
    const first = readDeviceListParams(new URLSearchParams("q=kiosk"));
    const second = changeDeviceListParams(first, { cursors: [...first.cursors, CURSOR_2] });
    expect(deviceListSearch(second)).toBe(`q=kiosk&after=${CURSOR_2}`);
    const third = changeDeviceListParams(second, { cursors: [...second.cursors, CURSOR_3] });
    const back = changeDeviceListParams(third, { cursors: third.cursors.slice(0, -1) });
    expect(readDeviceListParams(new URLSearchParams(deviceListSearch(back))).cursors).toEqual([CURSOR_2]);
  });

  it("starts again at the first page when a filter, the sort or the page size changes", () => {
    const paged = readDeviceListParams(new URLSearchParams(`after=${CURSOR_2}`));
    expect(changeDeviceListParams(paged, { status: "online" }).cursors).toEqual([]);
    expect(changeDeviceListParams(paged, { sort: "alias" }).cursors).toEqual([]);
    expect(changeDeviceListParams(paged, { pageSize: 25 }).cursors).toEqual([]);
  });

  it("ignores a malformed cursor list in the URL and shows the first page", () => {
    expect(readDeviceListParams(new URLSearchParams("after=not%20a%20cursor")).cursors).toEqual([]);
    expect(deviceListQuery(readDeviceListParams(new URLSearchParams("after=%25%25"))).cursor).toBeUndefined();
  });
});
