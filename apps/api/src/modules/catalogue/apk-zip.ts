import type { Hash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createInflateRaw, inflateRaw } from "node:zlib";
import { HttpError } from "../../lib/http-error";

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_HEADER_SIGNATURE = 0x02014b50;
const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const EOCD_MIN = 22;
const SIGNING_BLOCK_MAGIC = "APK Sig Block 42";
const MAX_CENTRAL_DIRECTORY = 16 * 1024 * 1024;
/** The APK Signing Block is read whole: real ones are a few KB (plus alignment padding). */
export const MAX_SIGNING_BLOCK = 16 * 1024 * 1024;
/**
 * The most an entry the reader holds in memory (AndroidManifest.xml, a v1 signature file) may
 * take, compressed or inflated: real binary manifests are tens to hundreds of KB, signatures a
 * few KB. Past it the APK is refused (`invalid_apk`) as soon as inflating crosses the bound, so
 * a zip bomb costs at most this much memory.
 */
export const MAX_APK_ENTRY_BYTES = 8 * 1024 * 1024;
/** Files are read (and digested) this much at a time: the v2/v3 chunk size, so one read is one chunk. */
export const READ_CHUNK = 1024 * 1024;

const inflate = promisify(inflateRaw);

export type ZipEntry = { name: string; method: number; compressedSize: number; uncompressedSize: number; localOffset: number };
export type Zip = {
  size: number;
  entries: Map<string, ZipEntry>;
  centralDirectory: number;
  centralDirectorySize: number;
  /** Where the End of Central Directory record starts; it runs to the end of the file (comment included). */
  eocdOffset: number;
  /** The APK Signing Block, right before the central directory, when the file has one. */
  signingBlock: { offset: number; size: number } | null;
  /** Where entries must end: the signing block, else the central directory (nothing signed lies past it). */
  entriesEnd: number;
};

export const invalidApk = (message: string) => new HttpError("invalid_apk", message);

/** `length` bytes at `position`, refused as a truncated file when fewer are there. */
export async function readAt(handle: FileHandle, length: number, position: number, into = Buffer.alloc(length)): Promise<Buffer> {
  const { bytesRead } = await handle.read(into, 0, length, position);
  if (bytesRead !== length) throw invalidApk("The file is not an APK: it is truncated");
  return into.subarray(0, length);
}

/**
 * The ZIP's central directory, bounded to MAX_CENTRAL_DIRECTORY, found as Android finds it:
 * the End of Central Directory record whose comment runs exactly to the end of the file, a
 * central directory that ends where that record starts, and no two entries of one name
 * (which entry a reader would take is how the "master key" attacks on Android worked).
 */
export async function readZip(handle: FileHandle): Promise<Zip> {
  const notZip = (why = "it is not a readable ZIP archive") => invalidApk(`The file is not an APK: ${why}`);
  const { size } = await handle.stat();
  const tailLength = Math.min(size, EOCD_MIN + 0xffff);
  if (tailLength < EOCD_MIN) throw notZip();
  const tail = await readAt(handle, tailLength, size - tailLength);
  let eocd = -1;
  for (let at = tailLength - EOCD_MIN; at >= 0; at--) {
    if (tail.readUInt32LE(at) === EOCD_SIGNATURE && at + EOCD_MIN + tail.readUInt16LE(at + 20) === tailLength) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw notZip();
  const eocdOffset = size - tailLength + eocd;
  const count = tail.readUInt16LE(eocd + 10);
  const centralDirectorySize = tail.readUInt32LE(eocd + 12);
  const centralDirectory = tail.readUInt32LE(eocd + 16);
  if (centralDirectorySize > MAX_CENTRAL_DIRECTORY || centralDirectory + centralDirectorySize !== eocdOffset) throw notZip();
  const directory = await readAt(handle, centralDirectorySize, centralDirectory);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== CENTRAL_HEADER_SIGNATURE) throw notZip();
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    if (at + 46 + nameLength > directory.length) throw notZip();
    const name = directory.toString("utf8", at + 46, at + 46 + nameLength);
    if (entries.has(name)) throw notZip(`it has two entries named ${name}`);
    entries.set(name, {
      name,
      method: directory.readUInt16LE(at + 10),
      compressedSize: directory.readUInt32LE(at + 20),
      uncompressedSize: directory.readUInt32LE(at + 24),
      localOffset: directory.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  const signingBlock = await findSigningBlock(handle, centralDirectory);
  return { size, entries, centralDirectory, centralDirectorySize, eocdOffset, signingBlock, entriesEnd: signingBlock?.offset ?? centralDirectory };
}

/**
 * The APK Signing Block's place (source.android.com/docs/security/features/apksigning/v2):
 * `uint64 size, pairs, uint64 size, magic`, ending where the central directory starts.
 * A block with the magic but sizes that do not hold together is refused.
 */
async function findSigningBlock(handle: FileHandle, centralDirectory: number): Promise<Zip["signingBlock"]> {
  if (centralDirectory < 32) return null;
  const footer = await readAt(handle, 24, centralDirectory - 24);
  if (footer.subarray(8).toString("latin1") !== SIGNING_BLOCK_MAGIC) return null;
  const malformed = () => invalidApk("The APK's signing block is malformed: its size fields do not match");
  const declared = footer.readBigUInt64LE(0);
  if (declared < 24n || declared > BigInt(MAX_SIGNING_BLOCK) || Number(declared) + 8 > centralDirectory) throw malformed();
  const offset = centralDirectory - Number(declared) - 8;
  if ((await readAt(handle, 8, offset)).readBigUInt64LE(0) !== declared) throw malformed();
  return { offset, size: Number(declared) + 8 };
}

/** Where an entry's data starts, checked to lie (with its compressed size) before `zip.entriesEnd`. */
async function entryData(handle: FileHandle, zip: Zip, entry: ZipEntry): Promise<number> {
  const unreadable = () => invalidApk(`The file is not an APK: its ${entry.name} cannot be read`);
  if (entry.localOffset + 30 > zip.entriesEnd) throw unreadable();
  const header = await readAt(handle, 30, entry.localOffset);
  if (header.readUInt32LE(0) !== LOCAL_HEADER_SIGNATURE) throw unreadable();
  if (entry.method !== 0 && entry.method !== 8) throw unreadable();
  const dataAt = entry.localOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  if (dataAt + entry.compressedSize > zip.entriesEnd) throw unreadable();
  return dataAt;
}

/** One entry's bytes, stored or deflated, refused past MAX_APK_ENTRY_BYTES whatever its header claims. */
export async function readEntry(handle: FileHandle, zip: Zip, entry: ZipEntry): Promise<Buffer> {
  const tooLarge = () =>
    invalidApk(`The APK's ${entry.name} is larger than ${MAX_APK_ENTRY_BYTES} bytes once inflated: it is refused (no real APK has one so large)`);
  if (entry.compressedSize > MAX_APK_ENTRY_BYTES || entry.uncompressedSize > MAX_APK_ENTRY_BYTES) throw tooLarge();
  const data = await readAt(handle, entry.compressedSize, await entryData(handle, zip, entry));
  if (entry.method === 0) return data;
  try {
    return await inflate(data, { maxOutputLength: MAX_APK_ENTRY_BYTES });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
    throw invalidApk(`The file is not an APK: its ${entry.name} cannot be read`);
  }
}

/**
 * Feeds an entry's inflated bytes to `hashes`, a megabyte at a time, never holding the entry
 * whole. Inflating stops past the size the central directory declares (which the caller has
 * bounded), and an entry that inflates to another size than declared is refused.
 */
export async function hashEntry(handle: FileHandle, zip: Zip, entry: ZipEntry, hashes: Hash[]): Promise<void> {
  const dataAt = await entryData(handle, zip, entry);
  const wrongSize = () => invalidApk(`The APK's ${entry.name} does not inflate to the size its ZIP header declares`);
  async function* compressed() {
    for (let done = 0; done < entry.compressedSize; done += READ_CHUNK) {
      yield await readAt(handle, Math.min(READ_CHUNK, entry.compressedSize - done), dataAt + done);
    }
  }
  let inflated = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      inflated += chunk.length;
      if (inflated > entry.uncompressedSize) return done(wrongSize());
      for (const hash of hashes) hash.update(chunk);
      done();
    },
  });
  try {
    if (entry.method === 0) await pipeline(Readable.from(compressed()), sink);
    else await pipeline(Readable.from(compressed()), createInflateRaw(), sink);
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw invalidApk(`The file is not an APK: its ${entry.name} cannot be read`);
  }
  if (inflated !== entry.uncompressedSize) throw wrongSize();
}
