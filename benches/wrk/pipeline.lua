-- Pipelined native PUTs: each write carries DEPTH requests (default 16) back to back,
-- and wrk counts every response. Env: KEYS (default 10000), DEPTH, PREFIX (default "key").
local keys = tonumber(os.getenv("KEYS") or "10000")
local depth = tonumber(os.getenv("DEPTH") or "16")
local prefix = os.getenv("PREFIX") or "key"
local value = '{"name":"Alice","age":30,"tags":["a","b"]}'
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed(os.time())
end

function request()
  local batch = {}
  for i = 1, depth do
    local key = prefix .. math.random(0, keys - 1)
    batch[i] = wrk.format("PUT", "/v1/kv/" .. key, headers, value)
  end
  return table.concat(batch)
end
