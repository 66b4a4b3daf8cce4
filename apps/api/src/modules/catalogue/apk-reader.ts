import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { Apk } from "node-apk";
import { HttpError } from "../../lib/http-error";

export type ApkInfo = { packageName: string; versionCode: number; versionName: string | null; certSha256: string };

const EOCD_SIGNATURE = 0x06054b50;
const EOCD_MIN = 22;
const SIGNING_BLOCK_MAGIC = "APK Sig Block 42";
const MAX_SIGNING_BLOCK = 16 * 1024 * 1024;
// Signature scheme block ids, the newest first: v3.1, v3, v2.
const SCHEME_IDS = [0x1b93ad61, 0xf05368c0, 0x7109871a];

/**
 * Reads what the catalogue needs from an APK on disk. The manifest (binary XML) is read
 * with node-apk, a maintained parser; the signing certificate from the APK Signature
 * Scheme v3/v2 block, which every APK signed for Android 7+ has and which node-apk does not
 * read, else from the v1 JAR signature (META-INF/*.RSA, via node-apk). Anything that is not
 * a signed APK is `invalid_apk`.
 */
export async function readApk(file: string): Promise<ApkInfo> {
  const apk = new Apk(file);
  let manifest: { package: string; versionCode: number; versionName: string };
  try {
    manifest = await apk.getManifestInfo();
  } catch {
    throw new HttpError("invalid_apk", "The file is not an APK: it has no readable AndroidManifest.xml");
  }
  const packageName = manifest.package;
  const versionCode = manifest.versionCode;
  if (typeof packageName !== "string" || !/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/.test(packageName) || packageName.length > 255) {
    throw new HttpError("invalid_apk", "The APK's manifest has no valid package name");
  }
  if (!Number.isInteger(versionCode) || versionCode < 1 || versionCode > 2_147_483_647) {
    throw new HttpError("invalid_apk", "The APK's manifest has no valid versionCode");
  }
  const versionName = typeof manifest.versionName === "string" && manifest.versionName.length <= 255 ? manifest.versionName : null;
  const certificate = (await signingBlockCertificate(file)) ?? (await v1Certificate(apk));
  if (!certificate) throw new HttpError("invalid_apk", "The APK is not signed: it has neither a v2/v3 signing block nor a v1 signature");
  return { packageName, versionCode, versionName, certSha256: createHash("sha256").update(certificate).digest("hex") };
}

async function v1Certificate(apk: Apk): Promise<Buffer | null> {
  try {
    const [first] = await apk.getCertificateInfo();
    return first ? first.bytes : null;
  } catch {
    return null;
  }
}

/**
 * The first signer's certificate (DER) from the APK Signing Block that sits right before
 * the ZIP central directory (source.android.com/docs/security/features/apksigning/v2).
 * Reads only the end of the file; null when there is no such block.
 */
async function signingBlockCertificate(file: string): Promise<Buffer | null> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const tailLength = Math.min(size, EOCD_MIN + 0xffff);
    const tail = Buffer.alloc(tailLength);
    await handle.read(tail, 0, tailLength, size - tailLength);
    let eocd = -1;
    for (let at = tailLength - EOCD_MIN; at >= 0; at--) {
      if (tail.readUInt32LE(at) === EOCD_SIGNATURE) {
        eocd = at;
        break;
      }
    }
    if (eocd < 0) return null;
    const centralDirectory = tail.readUInt32LE(eocd + 16);
    if (centralDirectory < 32 || centralDirectory > size) return null;
    const footer = Buffer.alloc(24);
    await handle.read(footer, 0, 24, centralDirectory - 24);
    if (footer.subarray(8).toString("latin1") !== SIGNING_BLOCK_MAGIC) return null;
    const blockSize = Number(footer.readBigUInt64LE(0));
    if (blockSize < 24 || blockSize > MAX_SIGNING_BLOCK || blockSize + 8 > centralDirectory) return null;
    // The pairs lie between the leading size field and the footer.
    const pairs = Buffer.alloc(blockSize - 24);
    await handle.read(pairs, 0, pairs.length, centralDirectory - blockSize);
    return firstCertificate(pairs);
  } finally {
    await handle.close();
  }
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
