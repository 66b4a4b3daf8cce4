import { type KeyObject, X509Certificate, constants, createHash, createPublicKey, verify } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { READ_CHUNK, type Zip, invalidApk, readAt } from "./apk-zip";

/**
 * Verification of the APK Signature Schemes v2, v3 and v3.1 as Android's own verifier does it
 * (source.android.com/docs/security/features/apksigning/v2 and v3; frameworks/base
 * `android.util.apk.ApkSignatureSchemeV2Verifier`/`V3Verifier`), with Node's crypto.
 */

/** Who signed an APK: the certificate (DER), and its proof-of-rotation lineage, oldest first, ending with it. */
export type SigningIdentity = { certificate: Buffer; lineage: Buffer[] };

type ContentDigest = "sha256" | "sha512";
type SignatureAlgorithm = { hash: "sha256" | "sha512"; key: "rsa" | "ec" | "dsa"; pssSalt?: number; content: ContentDigest | null };
/**
 * Signature algorithm ids. `content` is the digest of the APK's contents the signer signed; the
 * verity ones (a Merkle tree of 4 KiB pages, for fs-verity) are not computed here: a signer
 * always signs with a chunked one too, which is then verified instead. They remain usable to
 * verify a proof-of-rotation record, which signs no contents.
 */
export const SIGNATURE_ALGORITHMS = new Map<number, SignatureAlgorithm>([
  [0x0101, { hash: "sha256", key: "rsa", pssSalt: 32, content: "sha256" }],
  [0x0102, { hash: "sha512", key: "rsa", pssSalt: 64, content: "sha512" }],
  [0x0103, { hash: "sha256", key: "rsa", content: "sha256" }],
  [0x0104, { hash: "sha512", key: "rsa", content: "sha512" }],
  [0x0201, { hash: "sha256", key: "ec", content: "sha256" }],
  [0x0202, { hash: "sha512", key: "ec", content: "sha512" }],
  [0x0301, { hash: "sha256", key: "dsa", content: "sha256" }],
  [0x0421, { hash: "sha256", key: "rsa", content: null }],
  [0x0423, { hash: "sha256", key: "ec", content: null }],
  [0x0425, { hash: "sha256", key: "dsa", content: null }],
]);

// Newest first: Android verifies the newest scheme it knows and ignores the older ones.
const SCHEMES = [
  { id: 0x1b93ad61, name: "v3.1" },
  { id: 0xf05368c0, name: "v3" },
  { id: 0x7109871a, name: "v2" },
] as const;
type Scheme = (typeof SCHEMES)[number];
/** v2 signed attribute: the APK was also signed with scheme <value> (3), so a v2-only APK lost its v3 block. */
const STRIPPING_PROTECTION = 0xbeeff00d;
/** v3 signed attribute: the certificate lineage (proof of rotation). */
const PROOF_OF_ROTATION = 0x3ba06f8c;
/** v3.0 signed attribute: a v3.1 block also exists (for rotation from SDK <value>). */
const ROTATION_MIN_SDK = 0x559f8b02;

/** Reads the little-endian, length-prefixed structures of the signing block; a RangeError means malformed. */
class Cursor {
  private at = 0;
  constructor(private readonly buffer: Buffer) {}
  get remaining() {
    return this.buffer.length - this.at;
  }
  u32(): number {
    if (this.remaining < 4) throw new RangeError("past the end");
    this.at += 4;
    return this.buffer.readUInt32LE(this.at - 4);
  }
  bytes(): Buffer {
    const length = this.u32();
    if (length > this.remaining) throw new RangeError("length prefix past the end");
    this.at += length;
    return this.buffer.subarray(this.at - length, this.at);
  }
  /** A length-prefixed sequence of length-prefixed items. */
  sequence(): Buffer[] {
    const items = new Cursor(this.bytes());
    const out: Buffer[] = [];
    while (items.remaining > 0) out.push(items.bytes());
    return out;
  }
}

type Signer = {
  signedData: Buffer;
  digests: { algorithm: number; digest: Buffer }[];
  certificates: Buffer[];
  attributes: { id: number; value: Buffer }[];
  maxSdk: number;
  signatures: { algorithm: number; signature: Buffer }[];
  publicKey: Buffer;
};

function parseSigner(bytes: Buffer, scheme: Scheme): Signer {
  const v3 = scheme.name !== "v2";
  const signer = new Cursor(bytes);
  const signedData = signer.bytes();
  const sdk = v3 ? { min: signer.u32(), max: signer.u32() } : { min: 0, max: 0xffffffff };
  const signatures = signer.sequence().map((record) => {
    const cursor = new Cursor(record);
    return { algorithm: cursor.u32(), signature: cursor.bytes() };
  });
  const publicKey = signer.bytes();
  const data = new Cursor(signedData);
  const digests = data.sequence().map((record) => {
    const cursor = new Cursor(record);
    return { algorithm: cursor.u32(), digest: cursor.bytes() };
  });
  const certificates = data.sequence();
  if (v3 && (data.u32() !== sdk.min || data.u32() !== sdk.max)) {
    throw invalidApk(`The APK's ${scheme.name} signature does not verify: its signed and unsigned SDK versions differ`);
  }
  const attributes = data.sequence().map((attribute) => {
    if (attribute.length < 4) throw new RangeError("attribute without an id");
    return { id: attribute.readUInt32LE(0), value: attribute.subarray(4) };
  });
  return { signedData, digests, certificates, attributes, maxSdk: sdk.max, signatures, publicKey };
}

/** Verifies `signature` over `data`; false rather than an exception for a key of another type or a malformed signature. */
export function verifySignature(algorithm: SignatureAlgorithm, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  if (key.asymmetricKeyType !== algorithm.key) return false;
  try {
    const pss = algorithm.pssSalt ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.pssSalt } : key;
    return verify(algorithm.hash, data, pss, signature);
  } catch {
    return false;
  }
}

function parseCertificate(der: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw invalidApk(`The APK's ${what} certificate is not a readable X.509 certificate`);
  }
}

type VerifiedSigner = { certificate: Buffer; content: ContentDigest; digest: Buffer; lineage: Buffer[]; maxSdk: number };

/**
 * One signer, as Android checks it: its strongest supported signature verifies over its signed
 * data with its public key; its digests and signatures name the same algorithms in the same
 * order; its first certificate holds that same public key (else anyone could sign with their
 * own key and name another's certificate); and, for v3, its lineage verifies and ends with it.
 * The content digest it signed is returned for the caller to check against the file.
 */
function verifySigner(signer: Signer, scheme: Scheme): VerifiedSigner {
  const fail = (why: string) => invalidApk(`The APK's ${scheme.name} signature does not verify: ${why}`);
  let best: { algorithm: number; signature: Buffer; spec: SignatureAlgorithm; content: ContentDigest } | undefined;
  for (const { algorithm, signature } of signer.signatures) {
    const spec = SIGNATURE_ALGORITHMS.get(algorithm);
    if (!spec?.content) continue;
    // Android's order of strength: chunked SHA-512 over chunked SHA-256; the first of equals.
    if (!best || (spec.content === "sha512" && best.content === "sha256")) best = { algorithm, signature, spec, content: spec.content };
  }
  if (!best) {
    const ids = signer.signatures.map(({ algorithm }) => `0x${algorithm.toString(16).padStart(4, "0")}`);
    throw fail(ids.length === 0 ? "its signer has no signature" : `none of its signature algorithms (${ids.join(", ")}) is supported`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: signer.publicKey, format: "der", type: "spki" });
  } catch {
    throw fail("its signer's public key is unreadable");
  }
  if (!verifySignature(best.spec, key, signer.signedData, best.signature)) throw fail("the signed data was altered, or not signed by the key it names");
  const signed = signer.digests.map(({ algorithm }) => algorithm);
  if (signed.length !== signer.signatures.length || signer.signatures.some(({ algorithm }, i) => algorithm !== signed[i])) {
    throw fail("its digests and signatures name different algorithms");
  }
  const [first] = signer.certificates;
  if (!first) throw fail("its signer has no certificate");
  if (!parseCertificate(first, `${scheme.name} signer's`).publicKey.equals(key)) {
    throw fail("its certificate is not that of the key that signed it (a certificate spliced in from another APK?)");
  }
  const digest = signer.digests.find(({ algorithm }) => algorithm === best.algorithm)!.digest;
  let lineage: Buffer[] = [];
  for (const { id, value } of signer.attributes) {
    if (id === STRIPPING_PROTECTION && scheme.name === "v2" && value.length >= 4 && value.readUInt32LE(0) === 3) {
      throw fail("it says the APK was signed with APK Signature Scheme v3 too, but its v3 signature was removed");
    }
    if (id === ROTATION_MIN_SDK && scheme.name === "v3") throw fail("it says the APK has a v3.1 signature block too, but that block was removed");
    if (id === PROOF_OF_ROTATION && scheme.name !== "v2") {
      if (lineage.length > 0) throw fail("it has two proof-of-rotation records");
      lineage = verifyLineage(value, scheme);
      if (lineage.length > 0 && !lineage.at(-1)?.equals(first)) {
        throw fail("its proof-of-rotation lineage does not end with its signing certificate");
      }
    }
  }
  if (lineage.length === 0) lineage = [first];
  return { certificate: first, content: best.content, digest, lineage, maxSdk: signer.maxSdk };
}

/**
 * The v3 proof-of-rotation record: `uint32 version`, then length-prefixed nodes, oldest first,
 * each `(signed data: certificate, signature algorithm), flags, signature algorithm, signature`;
 * each node's signed data is signed by the previous node's key, with the algorithm that node names.
 */
function verifyLineage(record: Buffer, scheme: Scheme): Buffer[] {
  const por = new Cursor(record);
  por.u32();
  const nodes: Buffer[] = [];
  const seen = new Set<string>();
  let previous: { key: KeyObject; algorithm: number } | null = null;
  while (por.remaining > 0) {
    const node = new Cursor(por.bytes());
    const signedData = node.bytes();
    node.u32(); // flags: what the newer key may do in the older one's name (ignored: see README)
    const algorithm = node.u32();
    const signature = node.bytes();
    const signed = new Cursor(signedData);
    const certificate = signed.bytes();
    const signedAlgorithm = signed.u32();
    const position = `certificate #${nodes.length + 1} of its proof-of-rotation lineage`;
    if (previous) {
      const spec = SIGNATURE_ALGORITHMS.get(previous.algorithm);
      if (!spec || signedAlgorithm !== previous.algorithm || !verifySignature(spec, previous.key, signedData, signature)) {
        throw invalidApk(`The APK's ${scheme.name} signature does not verify: ${position} is not signed by the certificate before it`);
      }
    }
    const digest = createHash("sha256").update(certificate).digest("hex");
    if (seen.has(digest)) throw invalidApk(`The APK's ${scheme.name} signature does not verify: ${position} appears twice in it`);
    seen.add(digest);
    nodes.push(Buffer.from(certificate));
    previous = { key: parseCertificate(certificate, `${scheme.name} lineage`).publicKey, algorithm };
  }
  return nodes;
}

function parsePairs(pairs: Buffer): Map<number, Buffer> {
  const values = new Map<number, Buffer>();
  for (let at = 0; at < pairs.length; ) {
    if (at + 12 > pairs.length) throw new RangeError("pair header past the end");
    const length = pairs.readBigUInt64LE(at);
    if (length < 4n || length > BigInt(pairs.length - at - 8)) throw new RangeError("pair past the end");
    const id = pairs.readUInt32LE(at + 8);
    if (!values.has(id)) values.set(id, pairs.subarray(at + 12, at + 8 + Number(length)));
    at += 8 + Number(length);
  }
  return values;
}

/**
 * Verifies the newest APK Signature Scheme block of the APK Signing Block (v3.1, else v3, else
 * v2): every signer, then the contents against the digests they signed. Returns the identity
 * Android binds the app to (for v3 with several signers, each for a range of SDK versions, the
 * one for the newest Android); null when there is no signing block or it holds none of these.
 */
export async function verifySigningBlock(handle: FileHandle, zip: Zip): Promise<SigningIdentity | null> {
  if (!zip.signingBlock) return null;
  const { offset, size } = zip.signingBlock;
  let pairs: Map<number, Buffer>;
  try {
    // The pairs lie between the leading size field and the footer (size and magic).
    pairs = parsePairs(await readAt(handle, size - 32, offset + 8));
  } catch (error) {
    if (error instanceof RangeError) throw invalidApk("The APK's signing block is malformed");
    throw error;
  }
  const scheme = SCHEMES.find(({ id }) => pairs.has(id));
  if (!scheme) return null;
  let verified: VerifiedSigner[];
  try {
    const signers = new Cursor(pairs.get(scheme.id)!).sequence();
    if (signers.length === 0) throw invalidApk(`The APK's ${scheme.name} signature does not verify: it has no signer`);
    // Android binds an app to the set of its signers; the catalogue compares one certificate.
    if (scheme.name === "v2" && signers.length > 1) throw invalidApk(`The APK has ${signers.length} v2 signers: the catalogue accepts APKs with one signer`);
    verified = signers.map((signer) => verifySigner(parseSigner(signer, scheme), scheme));
  } catch (error) {
    if (error instanceof RangeError) throw invalidApk(`The APK's ${scheme.name} signature block is malformed`);
    throw error;
  }
  const expected = new Map<ContentDigest, Buffer>();
  for (const { content, digest } of verified) {
    if (expected.get(content)?.equals(digest) === false) throw invalidApk(`The APK's ${scheme.name} signers disagree on the digest of its contents`);
    expected.set(content, digest);
  }
  const actual = await contentDigests(handle, zip, [...expected.keys()]);
  for (const [content, digest] of expected) {
    if (!actual.get(content)!.equals(digest)) {
      throw invalidApk(`The APK's ${scheme.name} signature does not verify: its contents were altered after signing (${content} digest differs)`);
    }
  }
  const newest = verified.reduce((a, b) => (b.maxSdk > a.maxSdk ? b : a));
  return { certificate: newest.certificate, lineage: newest.lineage };
}

/**
 * The v2/v3 digests of the contents: the entries (up to the signing block), the central
 * directory and the End of Central Directory record (its central directory offset set to the
 * signing block's, as if the block were absent), cut into 1 MiB chunks; the digest of
 * `0x5a, uint32 chunk count, each chunk's digest of (0xa5, uint32 length, bytes)`.
 * The file is read once, a chunk at a time, for all algorithms together.
 */
async function contentDigests(handle: FileHandle, zip: Zip, algorithms: ContentDigest[]): Promise<Map<ContentDigest, Buffer>> {
  const blockOffset = zip.signingBlock!.offset;
  const eocd = Buffer.from(await readAt(handle, zip.size - zip.eocdOffset, zip.eocdOffset));
  eocd.writeUInt32LE(blockOffset, 16);
  const sections = [
    { at: 0, length: blockOffset },
    { at: zip.centralDirectory, length: zip.centralDirectorySize },
    { at: 0, length: eocd.length, bytes: eocd },
  ];
  const chunkCount = sections.reduce((sum, { length }) => sum + Math.ceil(length / READ_CHUNK), 0);
  const head = Buffer.alloc(5);
  head[0] = 0x5a;
  head.writeUInt32LE(chunkCount, 1);
  const tops = algorithms.map((algorithm) => ({ algorithm, hash: createHash(algorithm).update(head) }));
  const buffer = Buffer.alloc(Math.min(READ_CHUNK, Math.max(blockOffset, zip.centralDirectorySize)));
  const prefix = Buffer.alloc(5);
  prefix[0] = 0xa5;
  for (const { at, length, bytes } of sections) {
    for (let done = 0; done < length; done += READ_CHUNK) {
      const size = Math.min(READ_CHUNK, length - done);
      const chunk = bytes ? bytes.subarray(done, done + size) : await readAt(handle, size, at + done, buffer);
      prefix.writeUInt32LE(size, 1);
      for (const { algorithm, hash } of tops) hash.update(createHash(algorithm).update(prefix).update(chunk).digest());
    }
  }
  return new Map(tops.map(({ algorithm, hash }) => [algorithm, hash.digest()]));
}
