-- wrk script of bench/peers.sh: one request shape from the environment (WRK_METHOD, WRK_BODY as
-- application/x-www-form-urlencoded, WRK_AUTH as the Authorization header); done() prints one
-- line "PEERS_JSON {…}" with the rate, latency percentiles (ms) and the non-2xx count.
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local auth = os.getenv("WRK_AUTH")
if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = auth end
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'PEERS_JSON {"requests": %d, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
