import path from "node:path";
import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { HttpError } from "../../lib/http-error";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { type ApkStore, localApkStore } from "./apk-store";
import { addApk, deleteApp, deleteAppVersion, listApps, receiveApk } from "./catalogue.service";
import { verifyAppFileUrl } from "./download-url";
import { advanceRelease, createRelease, getReleaseDetail, pauseRelease, resumeRelease, rollbackRelease } from "./releases.service";

/** The bucket when APK_STORAGE_S3_BUCKET is set (uploads still pass through the local folder), else the local folder. */
export function apkStoreOf(env: AppDeps["env"]): ApkStore {
  const root = path.resolve(env.APK_STORAGE_DIR ?? path.join(env.DATA_DIR, "apps"));
  if (!env.APK_STORAGE_S3_BUCKET) return localApkStore(root);
  // The AWS SDK is loaded only with a bucket to use (see optional-sdks.test.ts).
  const { createS3Client, s3ApkStore } = require("./s3-apk-store") as typeof import("./s3-apk-store");
  return s3ApkStore({ client: createS3Client(env), bucket: env.APK_STORAGE_S3_BUCKET, prefix: env.APK_STORAGE_S3_PREFIX, tempRoot: root });
}

export function catalogueRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const admin = { guards };
  const store = apkStoreOf(deps.env);

  mount(
    router,
    apiRoutes.uploadApp,
    async (req, res) => {
      const { sha256 } = inputOf(apiRoutes.uploadApp, res).query;
      // A signed admin request's signature covers the query, not the streamed body: the
      // file is bound to it by its hash.
      if (req.get("x-admin") !== undefined && !sha256) {
        throw new HttpError("validation_failed", "Signed admin uploads name the file's sha256 in the query", [
          { path: "query.sha256", message: "Required with X-Admin" },
        ]);
      }
      const upload = await receiveApk(req, res, store, {
        maxBytes: deps.env.APK_MAX_BYTES,
        timeoutSeconds: deps.env.APK_UPLOAD_TIMEOUT_SECONDS,
        stallSeconds: deps.env.HTTP_BODY_TIMEOUT_SECONDS,
      });
      const outcome = await addApk(deps, store, upload, sha256, res.locals.actor);
      res.status(outcome.created ? 201 : 200).json(outcome.body);
    },
    admin,
  );
  mount(router, apiRoutes.listApps, async (_req, res) => res.json(await listApps(deps)), admin);
  mount(
    router,
    apiRoutes.deleteAppVersion,
    async (_req, res) => {
      const { params } = inputOf(apiRoutes.deleteAppVersion, res);
      await deleteAppVersion(deps, store, params.packageName, params.versionCode, res.locals.actor);
      res.status(204).end();
    },
    admin,
  );
  mount(
    router,
    apiRoutes.deleteApp,
    async (_req, res) => {
      await deleteApp(deps, store, inputOf(apiRoutes.deleteApp, res).params.packageName, res.locals.actor);
      res.status(204).end();
    },
    admin,
  );
  mount(
    router,
    apiRoutes.createRelease,
    async (_req, res) => {
      const input = inputOf(apiRoutes.createRelease, res);
      res.status(201).json(await createRelease(deps, input.params.packageName, input.body, res.locals.actor));
    },
    admin,
  );
  mount(router, apiRoutes.getRelease, async (_req, res) => res.json(await getReleaseDetail(deps, inputOf(apiRoutes.getRelease, res).params.releaseId)), admin);
  mount(
    router,
    apiRoutes.advanceRelease,
    async (_req, res) => {
      const input = inputOf(apiRoutes.advanceRelease, res);
      res.json(await advanceRelease(deps, input.params.releaseId, input.body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.pauseRelease,
    async (_req, res) => res.json(await pauseRelease(deps, inputOf(apiRoutes.pauseRelease, res).params.releaseId, res.locals.actor)),
    admin,
  );
  mount(
    router,
    apiRoutes.resumeRelease,
    async (_req, res) => res.json(await resumeRelease(deps, inputOf(apiRoutes.resumeRelease, res).params.releaseId, res.locals.actor)),
    admin,
  );
  mount(
    router,
    apiRoutes.rollbackRelease,
    async (_req, res) => res.json(await rollbackRelease(deps, inputOf(apiRoutes.rollbackRelease, res).params.releaseId, res.locals.actor)),
    admin,
  );
  mount(
    router,
    apiRoutes.downloadAppFile,
    async (_req, res) => {
      const { params, query } = inputOf(apiRoutes.downloadAppFile, res);
      verifyAppFileUrl(deps.env, params.sha256, query.expires, query.signature, deps.clock.now());
      // A file is served only while a catalogue version refers to it: a URL of a deleted
      // version is 404 even before (or if never) its file is removed.
      const version = await deps.db.appVersion.findFirst({ where: { sha256: params.sha256 }, select: { id: true } });
      if (!version || !(await store.has(params.sha256))) throw new HttpError("not_found", "The catalogue has no such file");
      await store.send(params.sha256, res);
    },
    admin,
  );
  return router;
}
