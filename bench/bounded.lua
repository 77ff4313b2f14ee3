-- wrk script for bench/run.sh: sends one request at most COUNT times in all, each connection
-- waiting PAUSE_MS before each of its requests (0: back to back), and ends the run when the last
-- one is answered (or at wrk's -d limit). With METHOD and BODY_FILE the request is that method
-- with that body (headers come from -H). Run with one wrk thread, which sees the whole count:
--   wrk -t1 -c1 -d30s -s bench/bounded.lua http://127.0.0.1:18080/healthz -- 1000 10
--   wrk -t1 -c64 -d30s -H "Content-Type: application/json" -s bench/bounded.lua \
--     http://127.0.0.1:18080/api/register/ -- 5000 0 POST body.json
-- done() prints one line "BENCH_JSON {…}" shaped like oha's JSON output (requestsPerSec, p50,
-- p99 in seconds, status codes), as bench/token_exchange.lua does.

local ffi = require("ffi")
ffi.cdef [[
  int kill(int pid, int sig);
  int getpid(void);
]]

local thread_handle
function setup(thread)
  thread_handle = thread
end

local prepared
local pause = 0
local reserved = 0
answered = 0 -- globals: read by done() through thread:get()
statuses = {}
total = 0

function init(args)
  total = tonumber(args[1]) or 1000
  pause = tonumber(args[2]) or 0
  local method, body = args[3], nil
  if args[4] then
    local file = assert(io.open(args[4], "rb"))
    body = file:read("*a")
    file:close()
  end
  prepared = wrk.format(method, nil, nil, body)
end

-- Called before each request on a connection: reserve one of the COUNT here, so that no
-- connection sends more than are left; a connection without one waits (not measured) until the
-- last answer stops the thread.
function delay()
  if reserved >= total then
    return 3600 * 1000
  end
  reserved = reserved + 1
  return pause
end

function request()
  return prepared
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered >= total then
    wrk.thread:stop()
    -- wrk's main thread sleeps for the whole -d duration unless interrupted (see
    -- bench/token_exchange.lua).
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end

function done(summary, latency, _)
  local codes, parts = thread_handle:get("statuses"), {}
  for status, count in pairs(codes) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local errors = {}
  for name, count in pairs(summary.errors) do
    if name ~= "status" and count > 0 then
      errors[#errors + 1] = string.format('"%s": %d', name, count)
    end
  end
  local seconds = summary.duration / 1e6
  print(string.format(
    'BENCH_JSON {"summary": {"requestsPerSec": %f, "total": %f}, ' ..
    '"latencyPercentiles": {"p50": %f, "p99": %f}, ' ..
    '"statusCodeDistribution": {%s}, "errorDistribution": {%s}, "requests": %d}',
    summary.requests / seconds, seconds,
    latency:percentile(50) / 1e6, latency:percentile(99) / 1e6,
    table.concat(parts, ", "), table.concat(errors, ", "),
    thread_handle:get("answered")))
end
