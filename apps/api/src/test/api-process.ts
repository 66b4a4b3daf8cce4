// Entry point of an API instance that a test runs as a child process, so it can kill it
// with SIGKILL (no cleanup of any kind runs) or stop it with SIGTERM (a graceful shutdown). The environment configures it as usual;
// FAKE_FCM_PORT points its push gateway at the test's fake FCM server.
import { parseEnv } from "../config/env";
import { exitGracefullyOnSignals, startServer } from "../server";
import { fakeFcmGateway } from "./fake-fcm";

const fakeFcmPort = process.env.FAKE_FCM_PORT;
startServer(parseEnv(), fakeFcmPort ? { push: fakeFcmGateway(Number(fakeFcmPort)).gateway } : {}).then(
  (running) => {
    // SIGTERM shuts it down as in production; SIGKILL (ChildApi.kill) is the crash.
    exitGracefullyOnSignals(running);
    process.send?.({ url: running.url, instanceId: running.deps.instanceId });
  },
  (error: unknown) => {
    console.error("failed to start:", error);
    process.exit(1);
  },
);
