import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { once } from "node:events";
import { createDeflateRaw } from "node:zlib";
import { MAX_APK_ENTRY_BYTES, readApk } from "./apk-reader";

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const CERT = "f161faad5dc4cb510dc0dc4ba9ad43163a3e13acfb171e6ed63c5867f3056b50";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "apk-reader-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Deflates `size` zero bytes a megabyte at a time: the bomb is built without holding it inflated. */
async function deflatedZeros(size: number): Promise<Buffer> {
  const deflate = createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  deflate.on("data", (chunk: Buffer) => out.push(chunk));
  const chunk = Buffer.alloc(1024 * 1024);
  for (let written = 0; written < size; written += chunk.length) {
    if (!deflate.write(chunk)) await once(deflate, "drain");
  }
  deflate.end();
  await once(deflate, "end");
  return Buffer.concat(out);
}

/** A one-entry ZIP (deflated), its headers claiming `claimedSize` inflated bytes. */
function zipOf(name: string, deflated: Buffer, claimedSize: number): Buffer {
  const nameBytes = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8);
  local.writeUInt32LE(deflated.length, 18);
  local.writeUInt32LE(claimedSize, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(deflated.length, 20);
  central.writeUInt32LE(claimedSize, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  central.writeUInt32LE(0, 42);
  const directoryAt = local.length + nameBytes.length + deflated.length;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(1, 8);
  eocd.writeUInt16LE(1, 10);
  eocd.writeUInt32LE(central.length + nameBytes.length, 12);
  eocd.writeUInt32LE(directoryAt, 16);
  return Buffer.concat([local, nameBytes, deflated, central, nameBytes, eocd]);
}

describe("readApk", () => {
  it("reads manifest and certificate of APKs signed v1 + v2, and of one signed with the v2 scheme only", async () => {
    expect(await readApk(path.join(FIXTURES, "fixture-v2.apk"))).toEqual({
      packageName: "com.keelson.fixture",
      versionCode: 2,
      versionName: "1.1.0",
      certSha256: CERT,
    });
    expect(await readApk(path.join(FIXTURES, "fixture-v4-v2-signature-only.apk"))).toEqual({
      packageName: "com.keelson.fixture",
      versionCode: 4,
      versionName: "1.3.0",
      certSha256: CERT,
    });
    expect((await readApk(path.join(FIXTURES, "fixture-v3-other-key.apk"))).certSha256).toBe(
      "8bdeee265407fa3ec6d010e1aa66c02ab049e4721b3b7a1cb7c99503bbe62d00",
    );
  });

  it("refuses a truncated APK and a file that is not one as invalid_apk", async () => {
    const whole = await readFile(path.join(FIXTURES, "fixture-v1.apk"));
    const truncated = path.join(dir, "truncated.apk");
    await writeFile(truncated, whole.subarray(0, whole.length / 2));
    await expect(readApk(truncated)).rejects.toMatchObject({ code: "invalid_apk" });
    const text = path.join(dir, "text.apk");
    await writeFile(text, "PK but not really");
    await expect(readApk(text)).rejects.toMatchObject({ code: "invalid_apk" });
  });

  it("refuses a zip bomb manifest (256 MB of zeros in a few hundred KB) as invalid_apk without inflating it", async () => {
    const inflated = 256 * 1024 * 1024;
    const deflated = await deflatedZeros(inflated);
    expect(deflated.length).toBeLessThan(1024 * 1024);
    const lying = path.join(dir, "bomb-lying.apk");
    await writeFile(lying, zipOf("AndroidManifest.xml", deflated, 4096));
    const honest = path.join(dir, "bomb-honest.apk");
    await writeFile(honest, zipOf("AndroidManifest.xml", deflated, inflated));

    const before = process.memoryUsage().rss;
    // Headers that lie about the size: inflating stops at the bound.
    await expect(readApk(lying)).rejects.toMatchObject({ code: "invalid_apk", message: expect.stringContaining(`larger than ${MAX_APK_ENTRY_BYTES} bytes`) });
    // Headers that tell the truth: refused before inflating anything.
    await expect(readApk(honest)).rejects.toMatchObject({ code: "invalid_apk", message: expect.stringContaining("AndroidManifest.xml is larger") });
    const growth = process.memoryUsage().rss - before;
    expect(growth).toBeLessThan(64 * 1024 * 1024);
  });

  it("refuses a manifest that is not binary XML as invalid_apk", async () => {
    const garbage = Buffer.alloc(2048, 7);
    const file = path.join(dir, "garbage-manifest.apk");
    const { deflateRawSync } = await import("node:zlib");
    await writeFile(file, zipOf("AndroidManifest.xml", deflateRawSync(garbage), garbage.length));
    await expect(readApk(file)).rejects.toMatchObject({ code: "invalid_apk" });
  });
});
