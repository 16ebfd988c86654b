-- wrk script for the benchmarks in bench/: sends one fixed request and, when the run ends,
-- prints one machine-readable line: "WRK_JSON {...}" (latencies in microseconds).
--
--   wrk -t2 -c16 -d5s -s bench/wrk_json.lua URL -- METHOD BODY_FILE "Name: value" ...
--
-- BODY_FILE may be "-" for no body. No response() hook on purpose: defining one makes wrk
-- parse every response in Lua and costs client CPU. wrk itself counts responses with a
-- status >= 400 (errors.status) and socket errors (connect, read, write, timeout).

function init(args)
  if #args < 2 then
    error("usage: wrk ... -s wrk_json.lua URL -- METHOD BODY_FILE [HEADER ...]")
  end
  wrk.method = args[1]
  if args[2] ~= "-" then
    local file = assert(io.open(args[2], "rb"))
    wrk.body = file:read("*a")
    file:close()
  end
  for i = 3, #args do
    local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
    if name == nil then
      error("bad header (want 'Name: value'): " .. args[i])
    end
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)
  ))
end
