-- Like wrk_json.lua, but each request carries the next API key from a file (one per line):
-- the benchmark's 1,000 virtual keys. The file and wrk_json.lua's path come from the
-- environment (XVCKIT_BENCH_KEYS, XVCKIT_WRK_JSON) because wrk passes script arguments
-- only to init().
dofile(os.getenv("XVCKIT_WRK_JSON"))

local keys = {}
for line in io.lines(os.getenv("XVCKIT_BENCH_KEYS")) do
  keys[#keys + 1] = "Bearer " .. line
end
local next_key = math.random(#keys)

function request()
  next_key = next_key % #keys + 1
  wrk.headers["Authorization"] = keys[next_key]
  return wrk.format()
end
