import client from "prom-client";

export type Metrics = ReturnType<typeof createMetrics>;

/** A registry per app instance, so tests can run several apps in one process. */
export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  return {
    registry,
    register: new client.Counter({
      name: "mdm_register_total",
      help: "Device registrations by outcome.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    shed: new client.Counter({
      name: "mdm_requests_shed_total",
      help: "Requests and heartbeat frames refused, by reason: the instance overloaded (503: in_flight, event_loop_lag, database_queue; a device socket refused: websocket_upgrade; an error frame: websocket_heartbeat), too many heartbeats waiting to be written (503: heartbeat_queue), too many device tokens waiting to be looked up (503: device_token_queue), or too many requests in progress from their address (429: per_client).",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    limitUncounted: new client.Counter({
      name: "mdm_rate_limit_uncounted_total",
      help: "Requests a limit let through without counting them because its store (Redis) did not answer, by limit.",
      labelNames: ["limiter"] as const,
      registers: [registry],
    }),
    heartbeat: new client.Counter({
      name: "mdm_heartbeat_total",
      help: "Heartbeats accepted.",
      labelNames: ["source"],
      registers: [registry],
    }),
    heartbeatBatchSize: new client.Histogram({
      name: "mdm_heartbeat_batch_size",
      help: "Heartbeats written per database statement (group commit: HEARTBEAT_BATCH_MAX, HEARTBEAT_BATCH_WAIT_MS).",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    deviceTokenLookupBatchSize: new client.Histogram({
      name: "mdm_device_token_lookup_batch_size",
      help: "Device tokens looked up per database statement (those this instance has not cached; batched as heartbeats are: HEARTBEAT_BATCH_MAX, HEARTBEAT_BATCH_WAIT_MS).",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    commandTransitionBatchSize: new client.Histogram({
      name: "mdm_command_transition_batch_size",
      help: "Command status changes (sent, acknowledged, succeeded...) written per transaction (group commit).",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    commandSend: new client.Counter({
      name: "mdm_command_send_total",
      help: "Command push sends by outcome.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    actionResult: new client.Counter({
      name: "mdm_action_result_total",
      help: "Action results by reported status and whether they changed the command.",
      labelNames: ["status", "changed"],
      registers: [registry],
    }),
    requestDuration: new client.Histogram({
      name: "mdm_http_request_duration_seconds",
      help: "HTTP request latency by route.",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}
