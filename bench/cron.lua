-- wrk script for bench/dispatch_latency.py: GET /api/cron/<job> with the bearer secret.
-- BENCH_FIXED=<job> ticks one job (duplicates after the first); otherwise thread t ticks
-- bench-(BENCH_START + t * BENCH_STRIDE + n) for its n-th request: a fresh window each time.
-- BENCH_PATH replaces /api/cron/ (the dispatch floor is /bench/floor/).
local secret = os.getenv("BENCH_SECRET")
local prefix = os.getenv("BENCH_PATH") or "/api/cron/"
local fixed = os.getenv("BENCH_FIXED")
local first = tonumber(os.getenv("BENCH_START") or "0")
local stride = tonumber(os.getenv("BENCH_STRIDE") or "10000")
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  n = 0
  base = first + id * stride
end

function request()
  local job = fixed
  if not job then
    job = string.format("bench-%05d", base + n)
    n = n + 1
  end
  return wrk.format("GET", prefix .. job, {["Authorization"] = "Bearer " .. secret})
end

function done(summary, latency, requests)
  local statuses = summary.errors.status
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "p50": %.3f, "p95": %.3f, "p99": %.3f, "max": %.3f, ' ..
    '"non2xx": %d, "socketErrors": %d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, statuses,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
