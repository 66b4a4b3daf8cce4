import { X509Certificate, createHash, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { once } from "node:events";
import { createDeflateRaw, crc32, deflateRawSync } from "node:zlib";
import {
  PROOF_OF_ROTATION,
  V2_SCHEME,
  V3_SCHEME,
  firstSigner,
  proofOfRotation,
  resign,
  rewriteSigner,
  rewriteSigningBlock,
  rsaPssSha256,
  withAlgorithm,
} from "../../test/apk-forgery";
import { MAX_JAR_DIGESTED_BYTES } from "./apk-jar-signature";
import { MAX_APK_ENTRY_BYTES, readApk } from "./apk-reader";
import { readEntry, readZip } from "./apk-zip";

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const fixture = (name: string) => path.join(FIXTURES, name);
// As `apksigner verify --print-certs` and `apksigner lineage --print-certs` print them (see test-fixtures/apk/README.md).
const CERT = "f161faad5dc4cb510dc0dc4ba9ad43163a3e13acfb171e6ed63c5867f3056b50";
const OTHER_CERT = "8bdeee265407fa3ec6d010e1aa66c02ab049e4721b3b7a1cb7c99503bbe62d00";
const ROTATED_CERT = "0968d3b3f5a656b1a4f7fe18c1036db2edb6217ceefed41bf8ba4a32d204fd55";
/** The key of test-keystore-other.p12: what an attacker signs with (the fixture v3 is theirs). */
const ATTACKER_KEY = createPrivateKey(readFileSync(fixture("test-keystore-other.key.pem")));

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

type Entry = { name: string; data: Buffer; deflated?: boolean; claimedSize?: number };

/** A ZIP of `entries`, stored or (given already deflated) deflated, each claiming `claimedSize` inflated bytes if given. */
function zipOf(entries: Entry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data, deflated = false, claimedSize = data.length } of entries) {
    const nameBytes = Buffer.from(name);
    const crc = deflated ? 0 : crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(deflated ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(claimedSize, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(deflated ? 8 : 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(claimedSize, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(directory.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, eocd]);
}

/** A fixture's entries, inflated, in their order: to build an APK of them again, altered. */
async function entriesOf(name: string): Promise<Entry[]> {
  const handle = await open(fixture(name), "r");
  try {
    const zip = await readZip(handle);
    const entries: Entry[] = [];
    for (const entry of zip.entries.values()) entries.push({ name: entry.name, data: await readEntry(handle, zip, entry) });
    return entries;
  } finally {
    await handle.close();
  }
}

function edit(entries: Entry[], name: string, change: (data: Buffer) => Buffer): Entry[] {
  expect(entries.some((entry) => entry.name === name)).toBe(true);
  return entries.map((entry) => (entry.name === name ? { ...entry, data: change(entry.data) } : entry));
}

/** A copy of `bytes` with one bit of the byte at `at` flipped. */
function flip(bytes: Buffer, at: number): Buffer {
  const out = Buffer.from(bytes);
  out[at] = out.readUInt8(at) ^ 1;
  return out;
}

async function apkFile(name: string, bytes: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return file;
}

const refused = (message: string | RegExp) => ({
  code: "invalid_apk",
  message: typeof message === "string" ? expect.stringContaining(message) : expect.stringMatching(message),
});
const load = (name: string) => readFile(fixture(name));
/** The vendor's certificate (DER), as any APK of theirs carries it. */
const vendorCertificate = async () => firstSigner(await load("fixture-v2.apk"), V3_SCHEME).certificates[0]!;

describe("readApk", () => {
  it("reads manifest and verified certificate of APKs signed v1 + v2 + v3, v2 only, v1 only (apksigner, jarsigner)", async () => {
    expect(await readApk(fixture("fixture-v2.apk"))).toEqual({
      packageName: "com.keelson.fixture",
      versionCode: 2,
      versionName: "1.1.0",
      certSha256: CERT,
      certLineage: [CERT],
    });
    expect(await readApk(fixture("fixture-v4-v2-signature-only.apk"))).toEqual({
      packageName: "com.keelson.fixture",
      versionCode: 4,
      versionName: "1.3.0",
      certSha256: CERT,
      certLineage: [CERT],
    });
    expect(await readApk(fixture("fixture-v3-other-key.apk"))).toMatchObject({ versionCode: 3, certSha256: OTHER_CERT, certLineage: [OTHER_CERT] });
    expect(await readApk(fixture("fixture-v1.apk"))).toMatchObject({ versionCode: 1, certSha256: CERT });
    expect(await readApk(fixture("fixture-v6-v1-only.apk"))).toEqual({
      packageName: "com.keelson.fixture",
      versionCode: 6,
      versionName: "1.5.0",
      certSha256: CERT,
      certLineage: [CERT],
    });
    expect(await readApk(fixture("fixture-v7-jarsigner.apk"))).toMatchObject({ versionCode: 7, certSha256: CERT, certLineage: [CERT] });
  });

  it("verifies RSA-PSS signatures (0x0101), which apksigner never writes: an APK's v3 signer re-signed with PSS by its own key", async () => {
    const pss = rewriteSigner(await load("fixture-v3-other-key.apk"), V3_SCHEME, (signer) => resign(withAlgorithm(signer, 0x0101), ATTACKER_KEY, rsaPssSha256));
    expect(await readApk(await apkFile("pss.apk", pss))).toMatchObject({ certSha256: OTHER_CERT, certLineage: [OTHER_CERT] });
    // The same bytes named PKCS#1 v1.5 (0x0103) do not verify.
    const misnamed = rewriteSigner(pss, V3_SCHEME, (signer) => withAlgorithm(signer, 0x0103));
    await expect(readApk(await apkFile("pss-misnamed.apk", misnamed))).rejects.toMatchObject(refused("the signed data was altered"));
  });

  it("reports a rotated key's newest certificate (v3, ECDSA P-384 with SHA-512), with its verified lineage oldest first", async () => {
    expect(await readApk(fixture("fixture-v5-rotated.apk"))).toEqual({
      packageName: "com.keelson.fixture",
      versionCode: 5,
      versionName: "1.4.0",
      certSha256: ROTATED_CERT,
      certLineage: [CERT, ROTATED_CERT],
    });
  });

  it("refuses a truncated APK and a file that is not one as invalid_apk", async () => {
    const whole = await load("fixture-v1.apk");
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
    await writeFile(lying, zipOf([{ name: "AndroidManifest.xml", data: deflated, deflated: true, claimedSize: 4096 }]));
    const honest = path.join(dir, "bomb-honest.apk");
    await writeFile(honest, zipOf([{ name: "AndroidManifest.xml", data: deflated, deflated: true, claimedSize: inflated }]));

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
    await writeFile(file, zipOf([{ name: "AndroidManifest.xml", data: deflateRawSync(garbage), deflated: true, claimedSize: garbage.length }]));
    await expect(readApk(file)).rejects.toMatchObject({ code: "invalid_apk" });
  });
});

describe("readApk refuses an altered APK as invalid_apk", () => {
  it("refuses an entry's data altered after signing: v3 (SHA-512), v2 and v1 digests", async () => {
    const payload = (apk: Buffer) => apk.indexOf("Keelson fixture payload") + 3;
    const rotated = await load("fixture-v5-rotated.apk");
    await expect(readApk(await apkFile("v3-payload.apk", flip(rotated, payload(rotated))))).rejects.toMatchObject(
      refused("The APK's v3 signature does not verify: its contents were altered after signing (sha512 digest differs)"),
    );
    // A byte of the manifest entry's local header (its modification time): readable, but not what was signed.
    const v2Only = await load("fixture-v4-v2-signature-only.apk");
    await expect(readApk(await apkFile("v2-header.apk", flip(v2Only, 10)))).rejects.toMatchObject(
      refused("The APK's v2 signature does not verify: its contents were altered after signing (sha256 digest differs)"),
    );
    for (const name of ["fixture-v6-v1-only.apk", "fixture-v7-jarsigner.apk"]) {
      const v1Only = await load(name);
      await expect(readApk(await apkFile(`v1-${name}`, flip(v1Only, payload(v1Only))))).rejects.toMatchObject(
        refused("The APK's v1 signature does not verify: assets/payload.txt was altered after signing"),
      );
    }
  });

  it("refuses a flipped signature byte (v3, v2, v1)", async () => {
    const flipSignature = (apk: Buffer, scheme: number) =>
      rewriteSigner(apk, scheme, (signer) => ({
        ...signer,
        signatures: signer.signatures.map(({ algorithm, signature }) => ({ algorithm, signature: flip(signature, 100) })),
      }));
    await expect(readApk(await apkFile("v3-signature.apk", flipSignature(await load("fixture-v2.apk"), V3_SCHEME)))).rejects.toMatchObject(
      refused("The APK's v3 signature does not verify: the signed data was altered, or not signed by the key it names"),
    );
    await expect(readApk(await apkFile("v2-signature.apk", flipSignature(await load("fixture-v4-v2-signature-only.apk"), V2_SCHEME)))).rejects.toMatchObject(
      refused("The APK's v2 signature does not verify: the signed data was altered"),
    );
    for (const name of ["fixture-v6-v1-only.apk", "fixture-v7-jarsigner.apk"]) {
      // The PKCS#7 block ends with the signature.
      const entries = edit(await entriesOf(name), "META-INF/FIXTURE.RSA", (data) => flip(data, data.length - 5));
      await expect(readApk(await apkFile(`v1-signature-${name}`, zipOf(entries)))).rejects.toMatchObject(
        refused("The APK's v1 signature does not verify: META-INF/FIXTURE.RSA is not a valid signature of META-INF/FIXTURE.SF by its certificate"),
      );
    }
  });

  it("refuses another's certificate swapped into the signing block, even with the signed data re-signed by the swapper's key", async () => {
    const attackers = await load("fixture-v3-other-key.apk");
    const vendor = await vendorCertificate();
    const swapped = rewriteSigner(attackers, V3_SCHEME, (signer) => ({ ...signer, certificates: [vendor] }));
    await expect(readApk(await apkFile("swapped.apk", swapped))).rejects.toMatchObject(
      refused("the signed data was altered, or not signed by the key it names"),
    );
    // The signature now verifies (with the attacker's public key, which the signer names): only
    // the check that the certificate holds that key stops it.
    const resigned = rewriteSigner(attackers, V3_SCHEME, (signer) => resign({ ...signer, certificates: [vendor] }, ATTACKER_KEY));
    await expect(readApk(await apkFile("spliced.apk", resigned))).rejects.toMatchObject(
      refused("The APK's v3 signature does not verify: its certificate is not that of the key that signed it"),
    );
    // Naming the vendor's public key too: then the attacker's signature does not verify.
    const vendorKey = new X509Certificate(vendor).publicKey.export({ format: "der", type: "spki" });
    const both = rewriteSigner(attackers, V3_SCHEME, (signer) => ({ ...resign({ ...signer, certificates: [vendor] }, ATTACKER_KEY), publicKey: vendorKey }));
    await expect(readApk(await apkFile("spliced-key.apk", both))).rejects.toMatchObject(
      refused("the signed data was altered, or not signed by the key it names"),
    );
    // The same splice in a v2-only APK.
    const v2Spliced = rewriteSigner(await load("fixture-v4-v2-signature-only.apk"), V2_SCHEME, (signer) =>
      resign({ ...signer, publicKey: firstSigner(attackers, V2_SCHEME).publicKey }, ATTACKER_KEY),
    );
    await expect(readApk(await apkFile("v2-spliced.apk", v2Spliced))).rejects.toMatchObject(
      refused("The APK's v2 signature does not verify: its certificate is not that of the key that signed it"),
    );
  });

  it("refuses a forged key rotation: a lineage not signed by the older key, or not ending with the signer", async () => {
    const attackers = await load("fixture-v3-other-key.apk");
    const vendor = await vendorCertificate();
    const own = firstSigner(attackers, V3_SCHEME).certificates[0]!;
    const withLineage = (lineage: Buffer) =>
      rewriteSigner(attackers, V3_SCHEME, (signer) =>
        resign({ ...signer, attributes: [...signer.attributes, { id: PROOF_OF_ROTATION, value: lineage }] }, ATTACKER_KEY),
      );
    // "Rotated from the vendor's key to mine": the link must be signed by the vendor's key; the attacker signs it with theirs.
    await expect(readApk(await apkFile("forged-rotation.apk", withLineage(proofOfRotation([vendor, own], [ATTACKER_KEY]))))).rejects.toMatchObject(
      refused("The APK's v3 signature does not verify: certificate #2 of its proof-of-rotation lineage is not signed by the certificate before it"),
    );
    // A genuine link (the attacker's key signs the next), but the lineage ends elsewhere than the APK's signer.
    await expect(readApk(await apkFile("lineage-elsewhere.apk", withLineage(proofOfRotation([own, vendor], [ATTACKER_KEY]))))).rejects.toMatchObject(
      refused("its proof-of-rotation lineage does not end with its signing certificate"),
    );
    // The control: the same construction, honest, verifies, and the lineage is reported.
    expect(await readApk(await apkFile("lineage-own.apk", withLineage(proofOfRotation([own], []))))).toMatchObject({
      certSha256: OTHER_CERT,
      certLineage: [OTHER_CERT],
    });
  });

  it("refuses an APK whose newer signature was stripped: v3 from a v2 + v3 APK, v2 and v3 from a v1 + v2 + v3 APK", async () => {
    const v3Stripped = rewriteSigningBlock(await load("fixture-v2.apk"), (pairs) => pairs.filter(({ id }) => id !== V3_SCHEME));
    await expect(readApk(await apkFile("v3-stripped.apk", v3Stripped))).rejects.toMatchObject(
      refused("The APK's v2 signature does not verify: it says the APK was signed with APK Signature Scheme v3 too, but its v3 signature was removed"),
    );
    // Its entries again, without the signing block: the v1 signature names the schemes it had.
    await expect(readApk(await apkFile("v2-stripped.apk", zipOf(await entriesOf("fixture-v2.apk"))))).rejects.toMatchObject(
      refused("The APK's v1 signature does not verify: it says the APK was signed with APK Signature Scheme v2,3 too, but that signature was removed"),
    );
  });

  it("refuses a v1 APK with an altered .SF or manifest, or an entry the manifest does not list", async () => {
    const jarsigned = await entriesOf("fixture-v7-jarsigner.apk");
    // jarsigner's signed attributes carry the .SF's digest.
    const sf = edit(jarsigned, "META-INF/FIXTURE.SF", (data) => Buffer.from(data.toString().replace("Created-By: ", "Created-By: x")));
    await expect(readApk(await apkFile("sf.apk", zipOf(sf)))).rejects.toMatchObject(refused("META-INF/FIXTURE.SF was altered after signing"));
    const apksigned = await entriesOf("fixture-v6-v1-only.apk");
    const unsignedSf = edit(apksigned, "META-INF/FIXTURE.SF", (data) => Buffer.from(data.toString().replace("Created-By: ", "Created-By: x")));
    await expect(readApk(await apkFile("sf-unsigned.apk", zipOf(unsignedSf)))).rejects.toMatchObject(
      refused("is not a valid signature of META-INF/FIXTURE.SF"),
    );
    // The payload and its digest in the manifest changed together: the .SF's digest of that section no longer matches.
    const altered = Buffer.from("Something else entirely, of any length.\n");
    const digest = createHash("sha256").update(altered).digest("base64");
    const manifestAltered = edit(
      edit(apksigned, "assets/payload.txt", () => altered),
      "META-INF/MANIFEST.MF",
      (data) => Buffer.from(data.toString().replace(/(Name: assets\/payload.txt\r?\nSHA-256-Digest: )\S+/, `$1${digest}`)),
    );
    await expect(readApk(await apkFile("manifest.apk", zipOf(manifestAltered)))).rejects.toMatchObject(
      refused("The APK's v1 signature does not verify: the manifest's section for assets/payload.txt was altered after signing"),
    );
    const extra = [...apksigned, { name: "classes.dex", data: Buffer.from("dex\n035\0") }];
    await expect(readApk(await apkFile("extra.apk", zipOf(extra)))).rejects.toMatchObject(
      refused("The APK's v1 signature does not verify: classes.dex is not signed: META-INF/MANIFEST.MF does not list it"),
    );
  });

  it("bounds the v1 digests: an entry inflating past its declared size, and entries declaring more than MAX_JAR_DIGESTED_BYTES", async () => {
    const apksigned = await entriesOf("fixture-v6-v1-only.apk");
    const payloadSize = apksigned.find(({ name }) => name === "assets/payload.txt")!.data.length;
    const bomb = await deflatedZeros(64 * 1024 * 1024);
    const lying = apksigned.map((entry) => (entry.name === "assets/payload.txt" ? { ...entry, data: bomb, deflated: true, claimedSize: payloadSize } : entry));
    await expect(readApk(await apkFile("v1-bomb.apk", zipOf(lying)))).rejects.toMatchObject(
      refused("The APK's assets/payload.txt does not inflate to the size its ZIP header declares"),
    );
    const huge = [...apksigned, { name: "assets/huge.bin", data: deflateRawSync(Buffer.alloc(16)), deflated: true, claimedSize: MAX_JAR_DIGESTED_BYTES }];
    await expect(readApk(await apkFile("v1-huge.apk", zipOf(huge)))).rejects.toMatchObject(refused(`inflate to more than ${MAX_JAR_DIGESTED_BYTES} bytes`));
  });

  it("refuses a malformed signing block, and a ZIP with two entries of one name", async () => {
    const malformed = rewriteSigningBlock(await load("fixture-v2.apk"), (pairs) =>
      pairs.map((pair) => (pair.id === V3_SCHEME ? { id: pair.id, value: Buffer.from([9, 0, 0, 0, 1]) } : pair)),
    );
    await expect(readApk(await apkFile("malformed.apk", malformed))).rejects.toMatchObject(refused("The APK's v3 signature block is malformed"));
    const entries = await entriesOf("fixture-v6-v1-only.apk");
    const twice = [...entries, entries.find(({ name }) => name === "AndroidManifest.xml")!];
    await expect(readApk(await apkFile("twice.apk", zipOf(twice)))).rejects.toMatchObject(refused("it has two entries named AndroidManifest.xml"));
  });
});
