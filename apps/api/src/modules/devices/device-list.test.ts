import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, resetTables } from "../../test";

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db);
});

type Page = { devices: Array<{ id: string; alias: string | null }>; total: number; nextCursor: string | null };

async function listAll(query: string, between?: (page: number) => Promise<void>): Promise<{ ids: string[]; pages: Page[] }> {
  const ids: string[] = [];
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const res = await adminRequest(t.app, "GET", `/admin/devices?${query}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status).toBe(200);
    pages.push(res.body);
    ids.push(...res.body.devices.map((device: { id: string }) => device.id));
    cursor = res.body.nextCursor;
    if (between) await between(pages.length);
  } while (cursor);
  return { ids, pages };
}

describe("GET /admin/devices: keyset paging", () => {
  it.each([
    ["enrolledAt", "desc"],
    ["enrolledAt", "asc"],
    ["alias", "asc"],
    ["alias", "desc"],
    ["batteryLevel", "desc"],
    ["lastSeenAt", "asc"],
  ])("returns every device exactly once by %s %s while devices enroll between pages", async (sort, order) => {
    const existing: string[] = [];
    for (let i = 0; i < 12; i++) {
      const device = await enrollDevice(t.app);
      existing.push(device.deviceId);
      // Duplicate and missing sort values: ties broken by id, nulls last.
      if (i % 3 !== 0)
        await database.db.device.update({
          where: { id: device.deviceId },
          data: { alias: `Till ${i % 4}`, batteryLevel: i % 4, lastSeenAt: new Date(Date.now() - (i % 4) * 1000) },
        });
    }
    const added: string[] = [];
    const { ids, pages } = await listAll(`limit=5&sort=${sort}&order=${order}`, async () => {
      added.push((await enrollDevice(t.app, { model: "late" })).deviceId);
      // One enrolls with a sort value in the part already read, too.
      await database.db.device.update({ where: { id: added.at(-1)! }, data: { alias: "A first", batteryLevel: 99, lastSeenAt: new Date(0) } });
    });
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(existing));
    expect(ids.every((id) => existing.includes(id) || added.includes(id))).toBe(true);
    expect(pages[0]!.total).toBe(12);
    expect(pages.at(-1)!.nextCursor).toBeNull();
  });

  it("keeps the null sort values last in both directions", async () => {
    for (const alias of ["b", null, "a", null, "c"]) {
      const device = await enrollDevice(t.app);
      await database.db.device.update({ where: { id: device.deviceId }, data: { alias } });
    }
    const aliases = async (order: string) =>
      (await listAll(`limit=2&sort=alias&order=${order}`)).pages.flatMap((page) => page.devices.map((device) => device.alias));
    expect(await aliases("asc")).toEqual(["a", "b", "c", null, null]);
    expect(await aliases("desc")).toEqual(["c", "b", "a", null, null]);
  });

  it("still pages by offset, and refuses a cursor with an offset or from another sort", async () => {
    for (let i = 0; i < 3; i++) await enrollDevice(t.app);
    const first = await adminRequest(t.app, "GET", "/admin/devices?limit=2");
    const byOffset = await adminRequest(t.app, "GET", "/admin/devices?limit=2&offset=2");
    expect(byOffset.body).toMatchObject({ total: 3, offset: 2, nextCursor: null });
    const byCursor = await adminRequest(t.app, "GET", `/admin/devices?limit=2&cursor=${first.body.nextCursor}`);
    expect(byCursor.body.devices).toEqual(byOffset.body.devices);
    expect((await adminRequest(t.app, "GET", `/admin/devices?offset=2&cursor=${first.body.nextCursor}`)).status).toBe(400);
    expect((await adminRequest(t.app, "GET", `/admin/devices?sort=alias&cursor=${first.body.nextCursor}`)).status).toBe(400);
    expect((await adminRequest(t.app, "GET", "/admin/devices?cursor=bm90LWEtY3Vyc29y")).status).toBe(400);
  });
});

describe("GET /admin/devices: search", () => {
  it("takes % and _ in a search term literally", async () => {
    const names = ["100% charged", "1000 charged", "till_3", "tillx3", "back\\slash"];
    for (const alias of names) {
      const device = await enrollDevice(t.app);
      await database.db.device.update({ where: { id: device.deviceId }, data: { alias } });
    }
    const search = async (term: string) => {
      const res = await adminRequest(t.app, "GET", `/admin/devices?search=${encodeURIComponent(term)}&sort=alias&order=asc`);
      expect(res.status).toBe(200);
      return res.body.devices.map((device: { alias: string }) => device.alias);
    };
    expect(await search("%")).toEqual(["100% charged"]);
    expect(await search("0%")).toEqual(["100% charged"]);
    expect(await search("_")).toEqual(["till_3"]);
    expect(await search("l_3")).toEqual(["till_3"]);
    expect(await search("\\")).toEqual(["back\\slash"]);
    expect(await search("CHARGED")).toEqual(["100% charged", "1000 charged"]);
  });

  it("finds a device by its whole id, and by serial number or model substrings", async () => {
    const device = await enrollDevice(t.app, { serialNumber: "SN-778899", model: "TC52" });
    await enrollDevice(t.app, { model: "Pixel" });
    const ids = async (term: string) => (await adminRequest(t.app, "GET", `/admin/devices?search=${term}`)).body.devices.map((row: { id: string }) => row.id);
    expect(await ids(device.deviceId.toUpperCase())).toEqual([device.deviceId]);
    expect(await ids("7788")).toEqual([device.deviceId]);
    expect(await ids("tc5")).toEqual([device.deviceId]);
  });
});

describe("GET /admin/devices: search across columns", () => {
  it("never matches a term spanning two columns, and still finds the separator inside one", async () => {
    // The listing's search text joins the columns with U+001F: a term holding it is matched
    // column by column.
    const joined = await enrollDevice(t.app, { serialNumber: "SN-1", model: "TC52" });
    await database.db.device.update({ where: { id: joined.deviceId }, data: { alias: "front" } });
    const holding = await enrollDevice(t.app, { model: "odd\u001fmodel" });
    const ids = async (term: string) =>
      (await adminRequest(t.app, "GET", `/admin/devices?search=${encodeURIComponent(term)}`)).body.devices.map((row: { id: string }) => row.id);
    expect(await ids("front\u001ftc52")).toEqual([]);
    expect(await ids("t\u001ft")).toEqual([]);
    expect(await ids("D\u001fM")).toEqual([holding.deviceId]);
    expect(await ids("FRONT")).toEqual([joined.deviceId]);
  });
});
