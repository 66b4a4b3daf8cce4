-- Heartbeats for wrk, written by http-load.ts: `wrk -t1 -s wrk-heartbeats.lua <url> --
-- <devices file> <bodies file> <variants> <rate> <amount>`. Each request takes the next device
-- of the devices file (a token and the index of its app version, in the order the devices are
-- heard from) and one of heartbeatBody's variants for that version, as the autocannon path.
-- With a rate above 0, each request waits for its slot on a fixed schedule; with an amount
-- too, wrk stops at the amount-th answer, so every request sent is answered and counted (a
-- run cut off by its duration would leave requests the server wrote but wrk never counted).
-- After a socket error wrk reconnects and sends at once, outside the schedule: a run with
-- errors may send more than the amount.
-- Latencies are wrk's: before done() it adds, for each answer slower than twice a
-- connection's mean interval, the samples a request sent on time would have had
-- (coordinated omission), so under overload its p99 is above autocannon's for the same
-- server. An answer slower than --timeout counts as an error and is left out of them.
local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *now);
  int getpid(void);
  int kill(int pid, int signal);
]])
local SIGINT = 2
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")
local function nowMs()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local tokens, versions, bodies = {}, {}, {}
local variants, nextDevice, sequence = 1, 0, 0
local intervalMs, nextSlot = 0, nil
local amount, scheduled, answered = 0, 0, 0
-- A connection parked once the amount is scheduled: longer than any run.
local PARKED_MS = 3600 * 1000

function init(args)
  for line in io.lines(args[1]) do
    local token, version = line:match("^(%S+) (%d+)$")
    tokens[#tokens + 1] = token
    versions[#versions + 1] = tonumber(version)
  end
  for line in io.lines(args[2]) do
    bodies[#bodies + 1] = line
  end
  variants = tonumber(args[3])
  local rate = tonumber(args[4])
  amount = tonumber(args[5])
  if rate > 0 then
    intervalMs = 1000 / rate
  else
    -- As fast as the server answers: no timer between a response and the next request.
    delay = nil
  end
  if amount == 0 then
    -- Until wrk's duration ends: no answers counted here (wrk then skips parsing them).
    response = nil
  end
end

function request()
  nextDevice = nextDevice % #tokens + 1
  sequence = sequence + 1
  local body = bodies[versions[nextDevice] * variants + sequence % variants + 1]
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[nextDevice] }
  return wrk.format("POST", "/v1/heartbeat", headers, body)
end

-- Called before each request (a connection's first too), for the wait before it is sent. A
-- request whose slot has passed (every connection was busy) goes at once.
function delay()
  if amount > 0 and scheduled >= amount then
    return PARKED_MS
  end
  scheduled = scheduled + 1
  local now = nowMs()
  nextSlot = (nextSlot or now) + intervalMs
  return math.max(0, nextSlot - now)
end

-- wrk's main thread sleeps for the whole duration; SIGINT, its Ctrl-C, ends that sleep.
function response()
  answered = answered + 1
  if amount > 0 and answered == amount then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), SIGINT)
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"status":%d,"errors":%d,"seconds":%.3f,"p50":%.1f,"p99":%.1f,"max":%.1f}\n',
    summary.requests,
    errors.status,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    summary.duration / 1e6,
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    latency.max / 1000
  ))
end
