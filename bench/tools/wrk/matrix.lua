-- wrk script of the benchmark (python -m bench, bench/loadgen.py). Keeps wrk's request static (no request() function, so
-- wrk sends one precomputed request as fast as the non-scripted path) and, in done(), prints the
-- latency percentiles wrk's own report lacks (p99.9) in microseconds, one per line:
--   BENCH_LATENCY_US <percentile> <microseconds>
-- The method, body and content type come from the environment (read once at load time):
--   BENCH_METHOD (default GET), BENCH_BODY_FILE (request body), BENCH_CONTENT_TYPE.

local method = os.getenv("BENCH_METHOD")
if method and method ~= "" then
  wrk.method = method
end
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
end

done = function(summary, latency, requests)
  for _, p in ipairs({ 50, 90, 99, 99.9, 99.99 }) do
    io.write(string.format("BENCH_LATENCY_US %g %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("BENCH_LATENCY_US max %d\n", latency.max))
end
