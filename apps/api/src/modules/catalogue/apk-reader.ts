import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { promisify } from "node:util";
import { inflateRaw } from "node:zlib";
import { Certificate, Manifest, XmlElement } from "node-apk";
import Source from "node-apk/build/lib/source";
import { HttpError } from "../../lib/http-error";

export type ApkInfo = { packageName: string; versionCode: number; versionName: string | null; certSha256: string };

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_HEADER_SIGNATURE = 0x02014b50;
const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const EOCD_MIN = 22;
const SIGNING_BLOCK_MAGIC = "APK Sig Block 42";
const MAX_SIGNING_BLOCK = 16 * 1024 * 1024;
const MAX_CENTRAL_DIRECTORY = 16 * 1024 * 1024;
/**
 * The most an entry the reader reads (AndroidManifest.xml, a v1 signature file) may take,
 * compressed or inflated: real binary manifests are tens to hundreds of KB, signatures a few
 * KB. Past it the APK is refused (`invalid_apk`) as soon as inflating crosses the bound, so a
 * zip bomb costs at most this much memory.
 */
export const MAX_APK_ENTRY_BYTES = 8 * 1024 * 1024;
// Signature scheme block ids, the newest first: v3.1, v3, v2.
const SCHEME_IDS = [0x1b93ad61, 0xf05368c0, 0x7109871a];

const inflate = promisify(inflateRaw);

type ZipEntry = { name: string; method: number; compressedSize: number; uncompressedSize: number; localOffset: number };
type Zip = { size: number; centralDirectory: number; entries: Map<string, ZipEntry> };

/**
 * Reads what the catalogue needs from an APK on disk, without loading the file: the ZIP
 * central directory, then only the entries it needs, each inflated with a cap of
 * MAX_APK_ENTRY_BYTES. The manifest (binary XML) is parsed with node-apk, a maintained
 * parser; the signing certificate comes from the APK Signature Scheme v3/v2 block, which
 * every APK signed for Android 7+ has and which node-apk does not read, else from the v1 JAR
 * signature (META-INF/*.RSA, parsed by node-apk). Anything that is not a signed APK is
 * `invalid_apk`. At most MAX_CENTRAL_DIRECTORY + MAX_SIGNING_BLOCK + 2 × MAX_APK_ENTRY_BYTES
 * are held at once per call, whatever the file's size.
 */
export async function readApk(file: string): Promise<ApkInfo> {
  const handle = await open(file, "r");
  try {
    const zip = await readZip(handle);
    const manifest = await readManifest(handle, zip);
    const packageName = manifest.package;
    const versionCode = manifest.versionCode;
    if (typeof packageName !== "string" || !/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/.test(packageName) || packageName.length > 255) {
      throw new HttpError("invalid_apk", "The APK's manifest has no valid package name");
    }
    if (typeof versionCode !== "number" || !Number.isInteger(versionCode) || versionCode < 1 || versionCode > 2_147_483_647) {
      throw new HttpError("invalid_apk", "The APK's manifest has no valid versionCode");
    }
    const versionName = typeof manifest.versionName === "string" && manifest.versionName.length <= 255 ? manifest.versionName : null;
    const certificate = (await signingBlockCertificate(handle, zip)) ?? (await v1Certificate(handle, zip));
    if (!certificate) throw new HttpError("invalid_apk", "The APK is not signed: it has neither a v2/v3 signing block nor a v1 signature");
    return { packageName, versionCode, versionName, certSha256: createHash("sha256").update(certificate).digest("hex") };
  } finally {
    await handle.close();
  }
}

async function readManifest(handle: FileHandle, zip: Zip): Promise<{ package: unknown; versionCode: unknown; versionName: unknown }> {
  const entry = zip.entries.get("AndroidManifest.xml");
  if (!entry) throw new HttpError("invalid_apk", "The file is not an APK: it has no AndroidManifest.xml");
  const bytes = await readEntry(handle, zip, entry);
  try {
    // node-apk's getters parse lazily: read them here, where a malformed document is caught.
    const manifest = new Manifest(new XmlElement(new Source(bytes)));
    return { package: manifest.package, versionCode: manifest.versionCode, versionName: manifest.versionName };
  } catch {
    throw new HttpError("invalid_apk", "The file is not an APK: its AndroidManifest.xml is not readable binary XML");
  }
}

async function v1Certificate(handle: FileHandle, zip: Zip): Promise<Buffer | null> {
  for (const entry of zip.entries.values()) {
    if (!entry.name.startsWith("META-INF/") || !entry.name.endsWith(".RSA")) continue;
    const bytes = await readEntry(handle, zip, entry);
    try {
      const [first] = Certificate.fromPkcs7(bytes);
      if (first) return first.bytes;
    } catch {
      // Not a readable PKCS#7 signature: try the next one.
    }
  }
  return null;
}

/** The ZIP's central directory (its end record found in the last 64 KiB), bounded to MAX_CENTRAL_DIRECTORY. */
async function readZip(handle: FileHandle): Promise<Zip> {
  const notZip = () => new HttpError("invalid_apk", "The file is not an APK: it is not a readable ZIP archive");
  const { size } = await handle.stat();
  const tailLength = Math.min(size, EOCD_MIN + 0xffff);
  if (tailLength < EOCD_MIN) throw notZip();
  const tail = Buffer.alloc(tailLength);
  await handle.read(tail, 0, tailLength, size - tailLength);
  let eocd = -1;
  for (let at = tailLength - EOCD_MIN; at >= 0; at--) {
    if (tail.readUInt32LE(at) === EOCD_SIGNATURE) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw notZip();
  const count = tail.readUInt16LE(eocd + 10);
  const directorySize = tail.readUInt32LE(eocd + 12);
  const centralDirectory = tail.readUInt32LE(eocd + 16);
  if (directorySize > MAX_CENTRAL_DIRECTORY || centralDirectory + directorySize > size) throw notZip();
  const directory = Buffer.alloc(directorySize);
  await handle.read(directory, 0, directorySize, centralDirectory);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== CENTRAL_HEADER_SIGNATURE) throw notZip();
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    if (at + 46 + nameLength > directory.length) throw notZip();
    const name = directory.toString("utf8", at + 46, at + 46 + nameLength);
    if (!entries.has(name)) {
      entries.set(name, {
        name,
        method: directory.readUInt16LE(at + 10),
        compressedSize: directory.readUInt32LE(at + 20),
        uncompressedSize: directory.readUInt32LE(at + 24),
        localOffset: directory.readUInt32LE(at + 42),
      });
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  return { size, centralDirectory, entries };
}

/** One entry's bytes, stored or deflated, refused past MAX_APK_ENTRY_BYTES whatever its header claims. */
async function readEntry(handle: FileHandle, zip: Zip, entry: ZipEntry): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(
      "invalid_apk",
      `The APK's ${entry.name} is larger than ${MAX_APK_ENTRY_BYTES} bytes once inflated: it is refused (no real APK has one so large)`,
    );
  const unreadable = () => new HttpError("invalid_apk", `The file is not an APK: its ${entry.name} cannot be read`);
  if (entry.compressedSize > MAX_APK_ENTRY_BYTES || entry.uncompressedSize > MAX_APK_ENTRY_BYTES) throw tooLarge();
  const header = Buffer.alloc(30);
  if (entry.localOffset + 30 > zip.centralDirectory) throw unreadable();
  await handle.read(header, 0, 30, entry.localOffset);
  if (header.readUInt32LE(0) !== LOCAL_HEADER_SIGNATURE) throw unreadable();
  const dataAt = entry.localOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  if (dataAt + entry.compressedSize > zip.centralDirectory) throw unreadable();
  const data = Buffer.alloc(entry.compressedSize);
  await handle.read(data, 0, data.length, dataAt);
  if (entry.method === 0) return data;
  if (entry.method !== 8) throw unreadable();
  try {
    return await inflate(data, { maxOutputLength: MAX_APK_ENTRY_BYTES });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
    throw unreadable();
  }
}

/**
 * The first signer's certificate (DER) from the APK Signing Block that sits right before
 * the ZIP central directory (source.android.com/docs/security/features/apksigning/v2);
 * null when there is no such block.
 */
async function signingBlockCertificate(handle: FileHandle, { centralDirectory }: Zip): Promise<Buffer | null> {
  if (centralDirectory < 32) return null;
  const footer = Buffer.alloc(24);
  await handle.read(footer, 0, 24, centralDirectory - 24);
  if (footer.subarray(8).toString("latin1") !== SIGNING_BLOCK_MAGIC) return null;
  const blockSize = Number(footer.readBigUInt64LE(0));
  if (blockSize < 24 || blockSize > MAX_SIGNING_BLOCK || blockSize + 8 > centralDirectory) return null;
  // The pairs lie between the leading size field and the footer.
  const pairs = Buffer.alloc(blockSize - 24);
  await handle.read(pairs, 0, pairs.length, centralDirectory - blockSize);
  return firstCertificate(pairs);
}

function firstCertificate(pairs: Buffer): Buffer | null {
  const schemes = new Map<number, Buffer>();
  for (let at = 0; at + 12 <= pairs.length; ) {
    const length = Number(pairs.readBigUInt64LE(at));
    if (length < 4 || at + 8 + length > pairs.length) return null;
    schemes.set(pairs.readUInt32LE(at + 8), pairs.subarray(at + 12, at + 8 + length));
    at += 8 + length;
  }
  for (const id of SCHEME_IDS) {
    const block = schemes.get(id);
    if (!block) continue;
    try {
      // signers → first signer → signed data → certificates → first certificate
      const signer = lengthPrefixed(lengthPrefixed(block, 0), 0);
      const signedData = lengthPrefixed(signer, 0);
      const digests = lengthPrefixed(signedData, 0);
      const certificates = lengthPrefixed(signedData, 4 + digests.length);
      return Buffer.from(lengthPrefixed(certificates, 0));
    } catch {
      return null;
    }
  }
  return null;
}

function lengthPrefixed(buffer: Buffer, at: number): Buffer {
  const length = buffer.readUInt32LE(at);
  if (at + 4 + length > buffer.length) throw new RangeError("length prefix past the end");
  return buffer.subarray(at + 4, at + 4 + length);
}
