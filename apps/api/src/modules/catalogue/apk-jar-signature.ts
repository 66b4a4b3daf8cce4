import { X509Certificate, createHash, verify } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { type Zip, type ZipEntry, hashEntry, invalidApk, readEntry } from "./apk-zip";

/**
 * Verification of the v1 (JAR) signature, which Android 7+ still accepts from an APK that has
 * no v2/v3 signature, as Android's apksig checks it: the PKCS#7 signature block
 * (`META-INF/<name>.RSA|DSA|EC`) signs `META-INF/<name>.SF`; the .SF holds digests of
 * `META-INF/MANIFEST.MF` (whole, or section by section); the manifest holds the digest of
 * every entry, and every entry must be in it.
 */

/**
 * The most the entries of a v1-only APK may inflate to, all together: each must be digested
 * whole (streamed, never held), so this bounds the work a zip bomb can cause.
 */
export const MAX_JAR_DIGESTED_BYTES = 1024 * 1024 * 1024;

const OID = {
  signedData: "1.2.840.113549.1.7.2",
  data: "1.2.840.113549.1.7.1",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
};
const PKCS7_DIGESTS = new Map([
  ["1.3.14.3.2.26", "sha1"],
  ["2.16.840.1.101.3.4.2.4", "sha224"],
  ["2.16.840.1.101.3.4.2.1", "sha256"],
  ["2.16.840.1.101.3.4.2.2", "sha384"],
  ["2.16.840.1.101.3.4.2.3", "sha512"],
]);
// The digest names of manifest attributes (`SHA-256-Digest`...), upper-cased.
const JAR_DIGESTS = new Map([
  ["SHA1", "sha1"],
  ["SHA-1", "sha1"],
  ["SHA-256", "sha256"],
  ["SHA-384", "sha384"],
  ["SHA-512", "sha512"],
]);

type Der = { tag: number; content: Buffer; encoded: Buffer };

/** One DER element at `at` (definite lengths only, as DER has); a RangeError when malformed. */
function readDer(buffer: Buffer, at = 0): Der & { end: number } {
  if (at + 2 > buffer.length) throw new RangeError("DER past the end");
  const tag = buffer.readUInt8(at);
  if ((tag & 0x1f) === 0x1f) throw new RangeError("DER tag not supported");
  let length = buffer.readUInt8(at + 1);
  let header = 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || at + 2 + bytes > buffer.length) throw new RangeError("bad DER length");
    length = buffer.readUIntBE(at + 2, bytes);
    header += bytes;
  }
  const end = at + header + length;
  if (end > buffer.length) throw new RangeError("DER past the end");
  return { tag, content: buffer.subarray(at + header, end), encoded: buffer.subarray(at, end), end };
}

function children(parent: Der | undefined): Der[] {
  if (!parent) throw new RangeError("missing DER element");
  const out: Der[] = [];
  for (let at = 0; at < parent.content.length; ) {
    const child = readDer(parent.content, at);
    out.push(child);
    at = child.end;
  }
  return out;
}

function oid(node: Der | undefined): string {
  if (node?.tag !== 0x06 || node.content.length === 0) throw new RangeError("not an OID");
  const first = node.content.readUInt8(0);
  const parts = [Math.floor(first / 40), first % 40];
  let value = 0;
  for (const byte of node.content.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

type SignerInfo = { issuer: Buffer; serial: Buffer; digest: string | undefined; signedAttributes: Der | undefined; signature: Buffer };

/** ContentInfo(SignedData): its certificates and signer infos (RFC 2315). */
function parsePkcs7(bytes: Buffer): { certificates: Buffer[]; signers: SignerInfo[] } {
  const [type, wrapped] = children(readDer(bytes));
  if (oid(type) !== OID.signedData || wrapped?.tag !== 0xa0) throw new RangeError("not PKCS#7 signed data");
  // version, digestAlgorithms, contentInfo, [0] certificates, [1] crls, signerInfos
  const fields = children(children(wrapped)[0]);
  let at = 3;
  const certificates = fields[at]?.tag === 0xa0 ? children(fields[at++]).map(({ encoded }) => encoded) : [];
  if (fields[at]?.tag === 0xa1) at++;
  const signers = children(fields[at]).map((info): SignerInfo => {
    // version, issuerAndSerialNumber, digestAlgorithm, [0] signedAttrs, digestEncryptionAlgorithm, encryptedDigest
    const parts = children(info);
    const [issuer, serial] = parts[1]?.tag === 0x30 ? children(parts[1]) : [];
    if (!issuer || !serial) throw new RangeError("signer not named by issuer and serial number");
    let next = 3;
    const signedAttributes = parts[next]?.tag === 0xa0 ? parts[next++] : undefined;
    const signature = parts[next + 1];
    if (signature?.tag !== 0x04) throw new RangeError("no signature");
    return {
      issuer: issuer.encoded,
      serial: serial.encoded,
      digest: PKCS7_DIGESTS.get(oid(children(parts[2])[0])),
      signedAttributes,
      signature: signature.content,
    };
  });
  return { certificates, signers };
}

/** Whether a certificate is the one a signer info names (its issuer and serial number, as encoded). */
function names(certificate: Buffer, signer: SignerInfo): boolean {
  const tbs = children(children(readDer(certificate))[0]);
  const at = tbs[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  return tbs[at]?.encoded.equals(signer.serial) === true && tbs[at + 2]?.encoded.equals(signer.issuer) === true;
}

type Section = { attributes: Map<string, string>; bytes: Buffer };

/**
 * A manifest or signature file: sections separated by an empty line, each `Name: value` lines
 * (a line starting with a space continues the one before). Each section keeps its bytes,
 * terminating empty line included, as the .SF digests them.
 */
function parseManifest(bytes: Buffer, file: string): { main: Section; sections: Map<string, Section> } {
  const malformed = () => invalidApk(`The APK's v1 signature does not verify: its ${file} is malformed`);
  const all: Section[] = [];
  let lines: string[] = [];
  let start = 0;
  const close = (end: number) => {
    if (lines.length > 0) {
      const attributes = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(": ");
        if (colon <= 0) throw malformed();
        attributes.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 2));
      }
      all.push({ attributes, bytes: bytes.subarray(start, end) });
    }
    lines = [];
    start = end;
  };
  for (let at = 0; at < bytes.length; ) {
    let end = at;
    while (end < bytes.length && bytes[end] !== 0x0a && bytes[end] !== 0x0d) end++;
    const line = bytes.toString("utf8", at, end);
    const next = bytes[end] === 0x0d && bytes[end + 1] === 0x0a ? end + 2 : Math.min(end + 1, bytes.length);
    if (line === "") close(next);
    else if (line.startsWith(" ")) {
      if (lines.length === 0) throw malformed();
      lines[lines.length - 1] += line.slice(1);
    } else lines.push(line);
    at = next;
  }
  close(bytes.length);
  const [main, ...rest] = all;
  if (!main) throw malformed();
  const sections = new Map<string, Section>();
  for (const section of rest) {
    const name = section.attributes.get("name");
    if (name === undefined || sections.has(name)) throw malformed();
    sections.set(name, section);
  }
  return { main, sections };
}

/** The `<algorithm><suffix>` digests of a section that we can compute, e.g. suffix `-Digest` → `SHA-256-Digest`. */
function digestsOf(section: Section, suffix: string): { hash: string; value: Buffer }[] {
  const out: { hash: string; value: Buffer }[] = [];
  for (const [name, value] of section.attributes) {
    if (!name.endsWith(suffix.toLowerCase())) continue;
    const hash = JAR_DIGESTS.get(name.slice(0, -suffix.length).toUpperCase());
    if (hash) out.push({ hash, value: Buffer.from(value, "base64") });
  }
  return out;
}

const matches = (digests: { hash: string; value: Buffer }[], bytes: Buffer) =>
  digests.length > 0 && digests.every(({ hash, value }) => createHash(hash).update(bytes).digest().equals(value));

/** Entries the manifest need not list (Android's rule): directories and the signature files themselves. */
function isSigned(name: string): boolean {
  if (name.endsWith("/")) return false;
  if (!name.startsWith("META-INF/") || name.indexOf("/", 9) >= 0) return true;
  const file = name.slice(9).toLowerCase();
  return !(file === "manifest.mf" || /\.(sf|rsa|dsa|ec)$/.test(file) || file.startsWith("sig-"));
}

/**
 * Verifies the APK's v1 signature and returns its signer's certificate (DER); null when it has
 * none (no `META-INF/*.RSA|DSA|EC`). One signer only: Android binds an app to the set of its
 * signers, and the catalogue compares one certificate.
 */
export async function verifyJarSignature(handle: FileHandle, zip: Zip): Promise<Buffer | null> {
  const fail = (why: string) => invalidApk(`The APK's v1 signature does not verify: ${why}`);
  const blocks = [...zip.entries.values()].filter(({ name }) => /^META-INF\/[^/]+\.(RSA|DSA|EC)$/i.test(name));
  const [block, ...others] = blocks;
  if (!block) return null;
  if (others.length > 0) throw invalidApk(`The APK has ${blocks.length} v1 signers: the catalogue accepts APKs with one signer`);
  const sfName = block.name.replace(/\.[^.]+$/, ".SF");
  const sfEntry = zip.entries.get(sfName);
  const manifestEntry = zip.entries.get("META-INF/MANIFEST.MF");
  if (!sfEntry) throw fail(`it has no ${sfName}`);
  if (!manifestEntry) throw fail("it has no META-INF/MANIFEST.MF");
  const sf = await readEntry(handle, zip, sfEntry);
  const manifestBytes = await readEntry(handle, zip, manifestEntry);

  // The signature block signs the .SF.
  let certificate: Buffer;
  try {
    const pkcs7 = parsePkcs7(await readEntry(handle, zip, block));
    const [signer] = pkcs7.signers;
    if (!signer || pkcs7.signers.length > 1) throw fail(`${block.name} has ${pkcs7.signers.length} signers (one expected)`);
    if (!signer.digest) throw fail(`${block.name} uses an unsupported digest algorithm`);
    const found = pkcs7.certificates.find((candidate) => names(candidate, signer));
    if (!found) throw fail(`${block.name} does not hold its signer's certificate`);
    certificate = found;
    let signed = sf;
    if (signer.signedAttributes) {
      // Signed attributes (as jarsigner writes them): they carry the .SF's digest, and the
      // signature covers their DER encoding as a SET.
      const attributes = new Map(
        children(signer.signedAttributes).map((attribute) => {
          const [type, values] = children(attribute);
          return [oid(type), children(values)[0]] as const;
        }),
      );
      if (oid(attributes.get(OID.contentType)) !== OID.data) throw fail(`${block.name} does not sign data`);
      if (!attributes.get(OID.messageDigest)?.content.equals(createHash(signer.digest).update(sf).digest())) throw fail(`${sfName} was altered after signing`);
      signed = Buffer.concat([Buffer.from([0x31]), signer.signedAttributes.encoded.subarray(1)]);
    }
    let key: X509Certificate["publicKey"];
    try {
      key = new X509Certificate(certificate).publicKey;
    } catch {
      throw invalidApk("The APK's v1 signer certificate is not a readable X.509 certificate");
    }
    let valid = false;
    try {
      valid = verify(signer.digest, signed, key, signer.signature);
    } catch {
      // A key type or signature encoding that does not fit: not valid.
    }
    if (!valid) throw fail(`${block.name} is not a valid signature of ${sfName} by its certificate`);
  } catch (error) {
    if (error instanceof RangeError) throw fail(`${block.name} is not a readable PKCS#7 signature`);
    throw error;
  }

  // The .SF signs the manifest: whole, else its main section and each entry's section.
  const manifest = parseManifest(manifestBytes, "META-INF/MANIFEST.MF");
  const signatureFile = parseManifest(sf, sfName);
  const schemes = signatureFile.main.attributes.get("x-android-apk-signed");
  if (schemes?.split(",").some((id) => ["2", "3"].includes(id.trim()))) {
    throw fail(`it says the APK was signed with APK Signature Scheme v${schemes.replace(/\s/g, "")} too, but that signature was removed`);
  }
  if (!matches(digestsOf(signatureFile.main, "-Digest-Manifest"), manifestBytes)) {
    const mainDigests = digestsOf(signatureFile.main, "-Digest-Manifest-Main-Attributes");
    if (mainDigests.length > 0 && !matches(mainDigests, manifest.main.bytes)) throw fail("META-INF/MANIFEST.MF was altered after signing");
    for (const [name, section] of signatureFile.sections) {
      const listed = manifest.sections.get(name);
      if (!listed || !matches(digestsOf(section, "-Digest"), listed.bytes)) throw fail(`the manifest's section for ${name} was altered after signing`);
    }
  }

  // The manifest holds each entry's digest; every entry must be in it, and signed by the .SF.
  const entries = [...zip.entries.values()].filter(({ name }) => isSigned(name));
  const total = entries.reduce((sum, { uncompressedSize }) => sum + uncompressedSize, 0);
  if (total > MAX_JAR_DIGESTED_BYTES) {
    throw invalidApk(
      `The APK's entries inflate to more than ${MAX_JAR_DIGESTED_BYTES} bytes: too much to verify its v1 signature (sign it with APK Signature Scheme v2)`,
    );
  }
  for (const entry of entries) {
    const section = manifest.sections.get(entry.name);
    if (!section) throw fail(`${entry.name} is not signed: META-INF/MANIFEST.MF does not list it`);
    if (!signatureFile.sections.has(entry.name)) throw fail(`${entry.name} is not signed: ${sfName} does not list it`);
    await verifyEntry(handle, zip, entry, section, fail);
  }
  return certificate;
}

async function verifyEntry(handle: FileHandle, zip: Zip, entry: ZipEntry, section: Section, fail: (why: string) => Error) {
  const digests = digestsOf(section, "-Digest");
  if (digests.length === 0) throw fail(`the manifest has no supported digest of ${entry.name}`);
  const hashes = digests.map(({ hash, value }) => ({ hash: createHash(hash), value }));
  await hashEntry(
    handle,
    zip,
    entry,
    hashes.map(({ hash }) => hash),
  );
  if (hashes.some(({ hash, value }) => !hash.digest().equals(value))) throw fail(`${entry.name} was altered after signing`);
}
