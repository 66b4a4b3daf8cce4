import { type KeyObject, constants, sign } from "node:crypto";

/**
 * Rewrites the signers of an APK's signing block, to build the forgeries the APK reader must
 * refuse: a certificate swapped in, a signature re-made with an attacker's key, a forged key
 * rotation. Test-only; it knows the layout, not whether anything verifies.
 */

export const V2_SCHEME = 0x7109871a;
export const V3_SCHEME = 0xf05368c0;
export const PROOF_OF_ROTATION = 0x3ba06f8c;

export type Signer = {
  /** Raw `(uint32 algorithm, length-prefixed digest)` records. */
  digests: Buffer[];
  certificates: Buffer[];
  /** v3 only: min and max SDK, in both the signed and the unsigned data. */
  sdk: [number, number] | null;
  attributes: { id: number; value: Buffer }[];
  signatures: { algorithm: number; signature: Buffer }[];
  publicKey: Buffer;
};

const u32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
};
export const lengthPrefixed = (bytes: Buffer) => Buffer.concat([u32(bytes.length), bytes]);
const sequence = (items: Buffer[]) => lengthPrefixed(Buffer.concat(items.map(lengthPrefixed)));

class Reader {
  at = 0;
  constructor(readonly buffer: Buffer) {}
  u32() {
    this.at += 4;
    return this.buffer.readUInt32LE(this.at - 4);
  }
  bytes() {
    const length = this.u32();
    this.at += length;
    return this.buffer.subarray(this.at - length, this.at);
  }
  sequence() {
    const items = new Reader(this.bytes());
    const out: Buffer[] = [];
    while (items.at < items.buffer.length) out.push(items.bytes());
    return out;
  }
}

function parseSigner(bytes: Buffer, v3: boolean): Signer {
  const signer = new Reader(bytes);
  const data = new Reader(signer.bytes());
  const sdk: [number, number] | null = v3 ? [signer.u32(), signer.u32()] : null;
  const signatures = signer.sequence().map((record) => {
    const reader = new Reader(record);
    return { algorithm: reader.u32(), signature: reader.bytes() };
  });
  const publicKey = signer.bytes();
  const digests = data.sequence();
  const certificates = data.sequence();
  if (v3) data.at += 8;
  const attributes = data.sequence().map((attribute) => ({ id: attribute.readUInt32LE(0), value: attribute.subarray(4) }));
  return { digests, certificates, sdk, attributes, signatures, publicKey };
}

/** The bytes a signer's signatures sign. */
export function signedData(signer: Signer): Buffer {
  return Buffer.concat([
    sequence(signer.digests),
    sequence(signer.certificates),
    ...(signer.sdk ? [u32(signer.sdk[0]), u32(signer.sdk[1])] : []),
    sequence(signer.attributes.map(({ id, value }) => Buffer.concat([u32(id), value]))),
  ]);
}

function encodeSigner(signer: Signer): Buffer {
  return Buffer.concat([
    lengthPrefixed(signedData(signer)),
    ...(signer.sdk ? [u32(signer.sdk[0]), u32(signer.sdk[1])] : []),
    sequence(signer.signatures.map(({ algorithm, signature }) => Buffer.concat([u32(algorithm), lengthPrefixed(signature)]))),
    lengthPrefixed(signer.publicKey),
  ]);
}

/** Signs like algorithm 0x0103 (RSASSA-PKCS1-v1_5 with SHA-256), the one apksigner uses for RSA keys. */
export const rsaSha256 = (data: Buffer, key: KeyObject) => sign("sha256", data, key);
/** Signs like algorithm 0x0101 (RSASSA-PSS with SHA-256, MGF1 SHA-256, 32-byte salt), which apksigner never writes. */
export const rsaPssSha256 = (data: Buffer, key: KeyObject) => sign("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });

/** Re-signs a signer's signed data with `key`, as every one of its signatures. */
export function resign(signer: Signer, key: KeyObject, signWith = rsaSha256): Signer {
  const data = signedData(signer);
  return { ...signer, signatures: signer.signatures.map(({ algorithm }) => ({ algorithm, signature: signWith(data, key) })) };
}

/** The signer with every algorithm id of its digests and signatures changed to `algorithm` (to be re-signed). */
export function withAlgorithm(signer: Signer, algorithm: number): Signer {
  return {
    ...signer,
    digests: signer.digests.map((record) => Buffer.concat([u32(algorithm), record.subarray(4)])),
    signatures: signer.signatures.map(({ signature }) => ({ algorithm, signature })),
  };
}

type Pair = { id: number; value: Buffer };

/**
 * The APK with its signing block's pairs replaced by `edit`'s result: the block is re-encoded,
 * and the End of Central Directory record's offset follows it.
 */
export function rewriteSigningBlock(apk: Buffer, edit: (pairs: Pair[]) => Pair[]): Buffer {
  const eocd = apk.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const centralDirectory = apk.readUInt32LE(eocd + 16);
  const blockSize = Number(apk.readBigUInt64LE(centralDirectory - 24));
  const blockStart = centralDirectory - blockSize - 8;
  const pairs: Pair[] = [];
  for (let at = blockStart + 8; at < centralDirectory - 24; ) {
    const length = Number(apk.readBigUInt64LE(at));
    pairs.push({ id: apk.readUInt32LE(at + 8), value: apk.subarray(at + 12, at + 8 + length) });
    at += 8 + length;
  }
  const encodedPairs = Buffer.concat(
    edit(pairs).map(({ id, value }) => {
      const head = Buffer.alloc(12);
      head.writeBigUInt64LE(BigInt(value.length + 4));
      head.writeUInt32LE(id, 8);
      return Buffer.concat([head, value]);
    }),
  );
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(encodedPairs.length + 24));
  const block = Buffer.concat([size, encodedPairs, size, Buffer.from("APK Sig Block 42", "latin1")]);
  const end = Buffer.from(apk.subarray(eocd));
  end.writeUInt32LE(blockStart + block.length, 16);
  return Buffer.concat([apk.subarray(0, blockStart), block, apk.subarray(centralDirectory, eocd), end]);
}

/** The APK with the first signer of its `scheme` block replaced by `edit`'s result. */
export function rewriteSigner(apk: Buffer, scheme: number, edit: (signer: Signer) => Signer): Buffer {
  return rewriteSigningBlock(apk, (pairs) =>
    pairs.map((pair) => {
      if (pair.id !== scheme) return pair;
      const signers = new Reader(pair.value).sequence();
      signers[0] = encodeSigner(edit(parseSigner(signers[0]!, scheme !== V2_SCHEME)));
      return { id: pair.id, value: sequence(signers) };
    }),
  );
}

/**
 * A proof-of-rotation record (`uint32 version`, then one node per certificate, oldest first),
 * each node signed by `signers[i]` (the first node is signed by nobody).
 */
export function proofOfRotation(certificates: Buffer[], signers: KeyObject[], algorithm = 0x0103): Buffer {
  const nodes = certificates.map((certificate, i) => {
    const data = Buffer.concat([lengthPrefixed(certificate), u32(i === 0 ? 0 : algorithm)]);
    const signature = i === 0 ? Buffer.alloc(0) : rsaSha256(data, signers[i - 1]!);
    return lengthPrefixed(Buffer.concat([lengthPrefixed(data), u32(0x1f), u32(algorithm), lengthPrefixed(signature)]));
  });
  return Buffer.concat([u32(1), ...nodes]);
}

/** The first signer of an APK's `scheme` block, as parsed. */
export function firstSigner(apk: Buffer, scheme: number): Signer {
  let found: Signer | undefined;
  rewriteSigner(apk, scheme, (signer) => {
    found = signer;
    return signer;
  });
  if (!found) throw new Error(`no block 0x${scheme.toString(16)} in this APK`);
  return found;
}
