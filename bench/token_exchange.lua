-- wrk script for bench/run.sh: one POST per line of a file of pre-generated authorization codes
-- (codes are single-use), each code sent at most once. The run ends when every code has been
-- answered (or at wrk's -d limit). Run with one wrk thread, which sees all the codes:
--   wrk -t1 -c32 -d60s -H "Authorization: Basic …" -H "Content-Type: …" -s bench/token_exchange.lua \
--     http://127.0.0.1:18080/o/token/ -- CODES_FILE 'grant_type=authorization_code&code={code}&…'
-- done() prints one line "BENCH_JSON {…}" shaped like oha's JSON output (requestsPerSec, p50, p99
-- in seconds, status codes) plus errorDistribution: socket errors and codes sent but not answered.

local ffi = require("ffi")
ffi.cdef [[
  int kill(int pid, int sig);
  int getpid(void);
]]

local thread_handle
function setup(thread)
  thread_handle = thread
end

local requests = {} -- pre-formatted, one per code
local reserved, sent = 0, 0
answered = 0 -- globals: read by done() through thread:get()
statuses = {}
total = 0

function init(args)
  local file, template = args[1], args[2]
  local i, j = template:find("{code}", 1, true)
  assert(i, "the body template needs a {code} placeholder")
  local prefix, suffix = template:sub(1, i - 1), template:sub(j + 1)
  for code in io.lines(file) do
    if code ~= "" then
      requests[#requests + 1] = wrk.format("POST", nil, nil, prefix .. code .. suffix)
    end
  end
  total = #requests
end

-- wrk calls delay() before each request() on a connection: reserve a code here, so that no
-- connection asks for a request when none is left. A connection without a code waits (its wait
-- is not a request and is not measured) until the last answer stops the thread.
function delay()
  if reserved >= total then
    return 3600 * 1000
  end
  reserved = reserved + 1
  return 0
end

function request()
  if sent >= reserved then
    -- wrk's start-up check parses one request without sending it: no code is used up.
    return requests[1]
  end
  sent = sent + 1
  return requests[sent]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered >= total then
    wrk.thread:stop()
    -- wrk's main thread sleeps for the whole -d duration unless interrupted; SIGINT ends that
    -- sleep (the process-directed signal goes to the main thread) so the run's duration is
    -- the real one.
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end

function done(summary, latency, _)
  local codes, parts = thread_handle:get("statuses"), {}
  for status, count in pairs(codes) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local answered_n, total_n = thread_handle:get("answered"), thread_handle:get("total")
  local errors = {}
  for name, count in pairs(summary.errors) do
    if name ~= "status" and count > 0 then
      errors[#errors + 1] = string.format('"%s": %d', name, count)
    end
  end
  if answered_n < total_n then
    errors[#errors + 1] = string.format('"codes not answered": %d', total_n - answered_n)
  end
  local seconds = summary.duration / 1e6
  print(string.format(
    'BENCH_JSON {"summary": {"requestsPerSec": %f, "total": %f}, ' ..
    '"latencyPercentiles": {"p50": %f, "p99": %f}, ' ..
    '"statusCodeDistribution": {%s}, "errorDistribution": {%s}, "codes": %d}',
    summary.requests / seconds, seconds,
    latency:percentile(50) / 1e6, latency:percentile(99) / 1e6,
    table.concat(parts, ", "), table.concat(errors, ", "), total_n))
end
