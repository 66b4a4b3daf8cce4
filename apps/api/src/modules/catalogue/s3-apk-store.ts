import { createReadStream } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import type { Env } from "../../config/env";
import { type ApkStore, rangeNotSatisfiable } from "./apk-store";

type S3Settings = Pick<
  Env,
  | "APK_STORAGE_S3_BUCKET"
  | "APK_STORAGE_S3_ENDPOINT"
  | "APK_STORAGE_S3_REGION"
  | "APK_STORAGE_S3_ACCESS_KEY_ID"
  | "APK_STORAGE_S3_SECRET_ACCESS_KEY"
  | "APK_STORAGE_S3_PREFIX"
>;

const APK_TYPE = "application/vnd.android.package-archive";

export function createS3Client(env: S3Settings): S3Client {
  return new S3Client({
    region: env.APK_STORAGE_S3_REGION,
    // Another S3-compatible server (MinIO, Ceph, R2...): its address, and bucket-in-path
    // URLs, which every such server serves (virtual-host URLs need DNS for each bucket).
    ...(env.APK_STORAGE_S3_ENDPOINT ? { endpoint: env.APK_STORAGE_S3_ENDPOINT, forcePathStyle: true } : {}),
    // Unset: the SDK's default chain (environment, instance role...).
    ...(env.APK_STORAGE_S3_ACCESS_KEY_ID && env.APK_STORAGE_S3_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: env.APK_STORAGE_S3_ACCESS_KEY_ID, secretAccessKey: env.APK_STORAGE_S3_SECRET_ACCESS_KEY } }
      : {}),
    // Plain uploads: the default streams aws-chunked bodies with trailing checksums, which
    // not every S3-compatible server understands. The caller has checked the file's SHA-256.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

const isStatus = (error: unknown, status: number) => error instanceof S3ServiceException && error.$metadata.httpStatusCode === status;

/**
 * Catalogue APKs in an S3-compatible bucket, by SHA-256 under `prefix`. Uploads still
 * arrive in a local temporary folder (hashed and parsed there), then go to the bucket
 * whole; downloads are streamed from the bucket through the API, Range requests included,
 * so devices only ever reach the API's signed URL and the bucket can stay private.
 */
export function s3ApkStore(options: { client: S3Client; bucket: string; prefix: string; tempRoot: string }): ApkStore {
  const { client, bucket, prefix } = options;
  const keyOf = (sha256: string) => `${prefix}${sha256.slice(0, 2)}/${sha256}.apk`;
  const has = async (sha256: string) => {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keyOf(sha256) }));
      return true;
    } catch (error) {
      if (isStatus(error, 404)) return false;
      throw error;
    }
  };
  return {
    async tempDir() {
      const dir = path.join(options.tempRoot, "tmp");
      await mkdir(dir, { recursive: true });
      return dir;
    },
    async put(tempFile, sha256) {
      // Put even when the same bytes are there: the object's LastModified (its storedAt)
      // becomes now, so the orphan sweep gives it its whole grace period. A version row
      // names the file right after; an identical object without one is an orphan, rare.
      const { size } = await stat(tempFile);
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: keyOf(sha256), Body: createReadStream(tempFile), ContentLength: size, ContentType: APK_TYPE }),
      );
    },
    has,
    async storedAt(sha256) {
      try {
        return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keyOf(sha256) }))).LastModified;
      } catch (error) {
        if (isStatus(error, 404)) return undefined;
        throw error;
      }
    },
    async *list() {
      let ContinuationToken: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
        for (const object of page.Contents ?? []) {
          // Only `<prefix><2 hex>/<sha256>.apk`: other keys under the prefix are not the store's.
          const match = /^([0-9a-f]{2})\/([0-9a-f]{64})\.apk$/.exec(object.Key?.slice(prefix.length) ?? "");
          if (!match || !match[2]!.startsWith(match[1]!) || !object.LastModified) continue;
          yield { sha256: match[2]!, storedAt: object.LastModified };
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken);
    },
    async remove(sha256) {
      // S3 answers a delete of a missing key with success too.
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(sha256) }));
    },
    async send(sha256, res) {
      const range = res.req.headers.range;
      let object: GetObjectCommandOutput;
      try {
        object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: keyOf(sha256), ...(range ? { Range: range } : {}) }));
      } catch (error) {
        if (!isStatus(error, 416)) throw error;
        const size = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keyOf(sha256) }))).ContentLength;
        if (size !== undefined) res.setHeader("Content-Range", `bytes */${size}`);
        throw rangeNotSatisfiable();
      }
      res.status(object.ContentRange ? 206 : 200);
      res.setHeader("Content-Type", APK_TYPE);
      res.setHeader("Accept-Ranges", "bytes");
      if (object.ContentLength !== undefined) res.setHeader("Content-Length", String(object.ContentLength));
      if (object.ContentRange) res.setHeader("Content-Range", object.ContentRange);
      await pipeline(object.Body as Readable, res);
    },
  };
}
