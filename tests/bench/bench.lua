-- wrk script for tests/bench/run.sh.
-- WRK_PATH (optional): request target, e.g. an absolute URL for forward proxies.
-- WRK_HOST (optional): Host header.  WRK_CLOSE=1: "Connection: close".
-- done() prints one machine-readable line:
--   STATS requests bytes duration_us connect_err read_err write_err status_err timeout_err
--   LAT p50_us p99_us
local p = os.getenv("WRK_PATH")
if p and p ~= "" then wrk.path = p end
local h = os.getenv("WRK_HOST")
if h and h ~= "" then wrk.headers["Host"] = h end
-- WRK_AUTH (optional): a Proxy-Authorization value sent with every request.
local a = os.getenv("WRK_AUTH")
if a and a ~= "" then wrk.headers["Proxy-Authorization"] = a end
if os.getenv("WRK_CLOSE") == "1" then wrk.headers["Connection"] = "close" end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("STATS %d %d %d %d %d %d %d %d\n", summary.requests, summary.bytes,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format("LAT %d %d\n", latency:percentile(50), latency:percentile(99)))
end
