-- The load benchmarks/bench_service.py puts on the service with wrk (one process in C, a
-- LuaJIT state per thread): POST /next_best_action for one random case of the key's creditor,
-- paced at CONCORD_BENCH_RATE requests a second in all (each thread keeps its share of a
-- schedule; a request waits for its slot, so the rate holds while the service keeps up).
-- Environment: CONCORD_BENCH_KEY, CONCORD_BENCH_CASES (comma-separated), CONCORD_BENCH_RATE,
-- CONCORD_BENCH_THREADS (wrk's -t). done() prints one JSON line of the figures. Each request
-- carries X-Bench-Id and X-Bench-Sent (its send time, ms) for the service's probe; with
-- CONCORD_BENCH_TRACE=PREFIX each answer's id, arrival time (ms) and status go to PREFIX-THREAD.txt.
local ffi = require("ffi")
ffi.cdef [[
struct concord_timeval { long tv_sec; long tv_usec; };
int gettimeofday(struct concord_timeval *tv, void *tz);
]]
local tv = ffi.new("struct concord_timeval")

local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local cases = {}
for id in string.gmatch(os.getenv("CONCORD_BENCH_CASES") or "", "[^,]+") do
  cases[#cases + 1] = id
end
local headers = {
  ["Authorization"] = "Bearer " .. (os.getenv("CONCORD_BENCH_KEY") or ""),
  ["Content-Type"] = "application/json",
}
local rate = tonumber(os.getenv("CONCORD_BENCH_RATE") or "100")
local threads = tonumber(os.getenv("CONCORD_BENCH_THREADS") or "1")
local counter = 0
local interval_ms, slot
local trace
local sent = 0

function setup(thread)
  counter = counter + 1
  thread:set("number", counter)
end

function init(args)
  math.randomseed(1000 + (number or 0))
  interval_ms = 1000 * threads / rate
  local path = os.getenv("CONCORD_BENCH_TRACE")
  if path and path ~= "" then
    trace = io.open(string.format("%s-%d.txt", path, number or 0), "w")
    trace:setvbuf("line")
  end
end

function delay()
  local now = now_ms()
  if slot == nil or slot < now - 1000 then
    slot = now  -- start, or fell more than a second behind: do not burst to catch up
  end
  slot = slot + interval_ms
  return math.max(0, math.floor(slot - interval_ms - now))
end

function request()
  local case_id = cases[math.random(#cases)]
  -- the service's probe (CONCORD_PROBE_DIR) notes these; the answer echoes the id
  sent = sent + 1
  headers["X-Bench-Id"] = string.format("%d-%d", number or 0, sent)
  headers["X-Bench-Sent"] = string.format("%.3f", now_ms())
  return wrk.format("POST", "/next_best_action", headers, '{"case_id": "' .. case_id .. '"}')
end

if (os.getenv("CONCORD_BENCH_TRACE") or "") ~= "" then  -- wrk reads answers only when response() exists
  function response(status, response_headers, body)
    trace:write(string.format("%s %.3f %d\n", response_headers["x-bench-id"] or "-", now_ms(), status))
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"errors_status": %d, "errors_other": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
