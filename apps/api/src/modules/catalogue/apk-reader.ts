import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { Manifest, XmlElement } from "node-apk";
import Source from "node-apk/build/lib/source";
import { HttpError } from "../../lib/http-error";
import { verifyJarSignature } from "./apk-jar-signature";
import { verifySigningBlock } from "./apk-signing-block";
import { type Zip, readEntry, readZip } from "./apk-zip";

export { MAX_APK_ENTRY_BYTES } from "./apk-zip";

export type ApkInfo = {
  packageName: string;
  versionCode: number;
  versionName: string | null;
  /** SHA-256 of the signing certificate (DER): the newest one when the key was rotated. */
  certSha256: string;
  /** The signing certificates' SHA-256, oldest first, ending with certSha256 (only it when the key never rotated). */
  certLineage: string[];
};

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/**
 * Reads what the catalogue needs from an APK on disk, without loading the file, once its
 * signature verifies as Android verifies it: the APK Signature Scheme v3.1/v3/v2 block, which
 * every APK signed for Android 7+ has (the signers' signatures, their certificates' keys, the
 * key rotation lineage, and the digests of the whole file), else the v1 JAR signature (the
 * PKCS#7 signature, the .SF, and the digest of every entry). So the certificate reported is
 * that of a key that signed this very file: an altered APK, or one naming a certificate it
 * was not signed with, is `invalid_apk`, as is anything that is not a signed APK. The
 * manifest (binary XML) is parsed with node-apk, a maintained parser.
 * Memory is bounded whatever the file: the central directory and the signing block (16 MiB
 * each), entries held whole (the manifest and v1 signature files) MAX_APK_ENTRY_BYTES each;
 * everything else is digested a megabyte at a time.
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
    // Verified last: it reads the whole file, so what is not even an APK is refused before.
    const signed = await verifySigningBlock(handle, zip);
    const certificate = signed?.certificate ?? (await verifyJarSignature(handle, zip));
    if (!certificate) throw new HttpError("invalid_apk", "The APK is not signed: it has neither a v2/v3 signing block nor a v1 signature");
    const lineage = signed?.lineage ?? [certificate];
    return { packageName, versionCode, versionName, certSha256: sha256(certificate), certLineage: lineage.map(sha256) };
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
