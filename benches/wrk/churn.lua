-- PUT (overwrites and re-inserts) and DELETE over a keyspace, native routes: the churn
-- that unlinks skiplist nodes while scans walk them (benches/scan_soak.py).
-- Env: KEYS (default 100000), PREFIX (default "key"), DELETE_PCT (default 30).
local keys = tonumber(os.getenv("KEYS") or "100000")
local prefix = os.getenv("PREFIX") or "key"
local delete_pct = tonumber(os.getenv("DELETE_PCT") or "30")
local values = {
  '{"name":"Alice","age":30,"tags":["a","b"]}',
  '"' .. string.rep("x", 180) .. '"',
}
local headers = { ["Content-Type"] = "application/json" }
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("seed", thread_no)
end

function init(args)
  math.randomseed(os.time() * 1000 + 1100 + (seed or 0))
end

function request()
  local key = prefix .. math.random(0, keys - 1)
  if math.random(1, 100) <= delete_pct then
    return wrk.format("DELETE", "/v1/kv/" .. key)
  end
  return wrk.format("PUT", "/v1/kv/" .. key, headers, values[math.random(1, 2)])
end
