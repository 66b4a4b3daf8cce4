import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import path from "node:path";

export type ChildApi = { url: string; instanceId: string; process: ChildProcess; kill: () => Promise<void> };

/**
 * Starts an API instance in its own process (TypeScript run through tsx), resolved once it
 * listens. `kill()` sends SIGKILL: the instance dies mid-flight, as in a crash.
 */
export async function startChildApi(env: Record<string, string>): Promise<ChildApi> {
  const child = fork(path.join(__dirname, "api-process.ts"), [], {
    env: { ...process.env, NODE_ENV: "test", HOST: "127.0.0.1", PORT: "0", ...env, NODE_OPTIONS: "--import tsx" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`the API process exited with ${String(code)} before listening`);
  });
  const [message] = (await Promise.race([once(child, "message"), exited])) as [{ url: string; instanceId: string }];
  exited.catch(() => undefined);
  return {
    ...message,
    process: child,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, "exit");
      child.kill("SIGKILL");
      await gone;
    },
  };
}
