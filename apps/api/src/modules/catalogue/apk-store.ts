import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Response } from "express";
import { HttpError } from "../../lib/http-error";

export function rangeNotSatisfiable(): HttpError {
  return new HttpError("range_not_satisfiable", "The requested range is outside the file");
}

/**
 * Where catalogue APKs live, by SHA-256 (content-addressed: one file per distinct APK,
 * whatever uploaded it): the local folder here, or an S3-compatible bucket (s3-apk-store.ts).
 */
export type ApkStore = {
  /** A folder for uploads in progress, on the same filesystem as the store (so `put` is a rename). */
  tempDir(): Promise<string>;
  /** Moves a fully written file, whose sha256 the caller has checked, into the store. */
  put(tempFile: string, sha256: string): Promise<void>;
  has(sha256: string): Promise<boolean>;
  /** Removes the file, if it is there. */
  remove(sha256: string): Promise<void>;
  /** Answers the request with the file, Range requests included. */
  send(sha256: string, res: Response): Promise<void>;
};

export function localApkStore(root: string): ApkStore {
  const nameOf = (sha256: string) => path.join(sha256.slice(0, 2), `${sha256}.apk`);
  const fileOf = (sha256: string) => path.join(root, nameOf(sha256));
  return {
    async tempDir() {
      const dir = path.join(root, "tmp");
      await mkdir(dir, { recursive: true });
      return dir;
    },
    async put(tempFile, sha256) {
      const target = fileOf(sha256);
      await mkdir(path.dirname(target), { recursive: true });
      // Same content, same name: an existing copy is as good as the new one.
      if (await exists(target)) await rm(tempFile, { force: true });
      else await rename(tempFile, target);
    },
    has: (sha256) => exists(fileOf(sha256)),
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
