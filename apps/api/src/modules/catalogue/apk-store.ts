import { randomUUID } from "node:crypto";
import { copyFile, link, mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import path from "node:path";
import type { Response } from "express";
import { HttpError } from "../../lib/http-error";

export function rangeNotSatisfiable(): HttpError {
  return new HttpError("range_not_satisfiable", "The requested range is outside the file");
}

/** A file in the store, and when it was last put there. */
export type StoredApk = { sha256: string; storedAt: Date };

/** Stored files are named by the SHA-256 of their bytes, in lowercase hex. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Where catalogue APKs live, by SHA-256 (content-addressed: one file per distinct APK,
 * whatever uploaded it): the local folder here, or an S3-compatible bucket (s3-apk-store.ts).
 */
export type ApkStore = {
  /** A folder for uploads in progress, on the same filesystem as the store (so `put` needs no copy). */
  tempDir(): Promise<string>;
  /**
   * Copies a fully written file, whose sha256 the caller has checked, into the store; the
   * caller removes the temporary file. The stored file's `storedAt` becomes now even when
   * the same bytes were there already, so the orphan sweep gives it its whole grace period.
   */
  put(tempFile: string, sha256: string): Promise<void>;
  has(sha256: string): Promise<boolean>;
  /** When the file was last put; undefined when it is not there. */
  storedAt(sha256: string): Promise<Date | undefined>;
  /** Every file in the store (uploads in progress are not), in no particular order. */
  list(): AsyncIterable<StoredApk>;
  /** Removes the file, if it is there. */
  remove(sha256: string): Promise<void>;
  /** Answers the request with the file, Range requests included. */
  send(sha256: string, res: Response): Promise<void>;
};

export function localApkStore(root: string): ApkStore {
  const nameOf = (sha256: string) => path.join(sha256.slice(0, 2), `${sha256}.apk`);
  const fileOf = (sha256: string) => path.join(root, nameOf(sha256));
  const storedAt = async (sha256: string) => {
    try {
      return (await stat(fileOf(sha256))).mtime;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  };
  return {
    async tempDir() {
      const dir = path.join(root, "tmp");
      await mkdir(dir, { recursive: true });
      return dir;
    },
    async put(tempFile, sha256) {
      const target = fileOf(sha256);
      await mkdir(path.dirname(target), { recursive: true });
      // A second name for the bytes (a hard link: no copy), dated now, then renamed over the
      // target at once: a download of an identical copy already there keeps reading it, and
      // the temporary file stays the caller's to put again or remove.
      const staged = path.join(path.dirname(tempFile), `${randomUUID()}.staged`);
      try {
        await link(tempFile, staged).catch(() => copyFile(tempFile, staged));
        const now = new Date();
        await utimes(staged, now, now);
        await rename(staged, target);
      } finally {
        await rm(staged, { force: true });
      }
    },
    has: (sha256) => exists(fileOf(sha256)),
    storedAt,
    async *list() {
      // Only `<2 hex>/<sha256>.apk`: the `tmp` folder of uploads in progress is not the store's.
      const folders = await readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return [];
        throw error;
      });
      for (const folder of folders) {
        if (!folder.isDirectory() || !/^[0-9a-f]{2}$/.test(folder.name)) continue;
        for (const name of await readdir(path.join(root, folder.name))) {
          const sha256 = name.slice(0, -".apk".length);
          if (!name.endsWith(".apk") || !SHA256_HEX.test(sha256) || !sha256.startsWith(folder.name)) continue;
          const at = await storedAt(sha256);
          if (at) yield { sha256, storedAt: at };
        }
      }
    },
    remove: (sha256) => rm(fileOf(sha256), { force: true }),
    send(sha256, res) {
      return new Promise((resolve, reject) => {
        // Relative to `root`: given a whole path, `send` refuses any with a segment starting
        // with a dot, and the default store lives under `.data`.
        const options = { root, acceptRanges: true, headers: { "Content-Type": "application/vnd.android.package-archive" } };
        res.sendFile(nameOf(sha256), options, (error) => {
          if (!error) return resolve();
          // The device went away mid-download: nothing to answer, nothing wrong here.
          if ((error as NodeJS.ErrnoException).code === "ECONNABORTED" || res.req.destroyed) return resolve();
          // A range outside the file: `send` has set Content-Range (bytes */<size>) already,
          // and the APK's content type, which the JSON error must not carry.
          if ((error as { status?: number }).status === 416) {
            res.removeHeader("Content-Type");
            return reject(rangeNotSatisfiable());
          }
          // Gone from the folder (removed by hand, or by a delete racing this download).
          if ((error as { status?: number }).status === 404) return reject(new HttpError("not_found", "This file is not in the catalogue"));
          reject(error);
        });
      });
    },
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
