import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { readApk } from "./apk-reader";

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const CERT = "f161faad5dc4cb510dc0dc4ba9ad43163a3e13acfb171e6ed63c5867f3056b50";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "apk-reader-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

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
});
