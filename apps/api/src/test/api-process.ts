// Entry point of an API instance that a test runs as a child process, so it can kill it
// with SIGKILL (no cleanup of any kind runs). The environment configures it as usual;
// FAKE_FCM_PORT points its push gateway at the test's fake FCM server.
import { parseEnv } from "../config/env";
import { startServer } from "../server";
import { fakeFcmGateway } from "./fake-fcm";

const fakeFcmPort = process.env.FAKE_FCM_PORT;
startServer(parseEnv(), fakeFcmPort ? { push: fakeFcmGateway(Number(fakeFcmPort)).gateway } : {}).then(
  (running) => process.send?.({ url: running.url, instanceId: running.deps.instanceId }),
  (error: unknown) => {
    console.error("failed to start:", error);
    process.exit(1);
  },
);
