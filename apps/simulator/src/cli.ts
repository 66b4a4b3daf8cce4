#!/usr/bin/env node
import { USAGE, UsageError, parseArgs } from "./args";
import { FleetSetupError, runFleet } from "./fleet";

// Live lines go to stderr and the final JSON report to stdout, so `| jq` sees only the report.

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`simulate: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }

  const stop = new AbortController();
  const onSignal = () => {
    if (stop.signal.aborted) process.exit(130);
    console.error("stopping (again to quit at once)...");
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const report = await runFleet({ ...parsed.options, signal: stop.signal, log: (line) => console.error(line) });
    console.log(JSON.stringify(report, null, 2));
    return 0;
  } catch (error) {
    console.error(`simulate: ${error instanceof FleetSetupError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

void main().then((code) => {
  process.exitCode = code;
  // Idle keep-alive sockets may hold the loop a little; the report is already written.
  setTimeout(() => process.exit(), 2000).unref();
});
