-- POST /v1/batch with SIZE ops (default 100) on distinct random keys of a prefilled keyspace.
-- Env: OP "get" (default) or "put", SIZE, KEYS (default 10000), PREFIX (default "key"),
-- TTL (default 3600; empty for none) for puts, BODIES (default 1000): how many different
-- bodies each thread builds in init() and picks from at random, so Lua costs nothing per
-- request beyond the pick.
local op = os.getenv("OP") or "get"
local size = tonumber(os.getenv("SIZE") or "100")
local keys = tonumber(os.getenv("KEYS") or "10000")
local prefix = os.getenv("PREFIX") or "key"
local ttl = os.getenv("TTL") or "3600"
local count = tonumber(os.getenv("BODIES") or "1000")
local value = '{"name":"Alice","age":30,"tags":["a","b"]}'
local headers = { ["Content-Type"] = "application/json" }
local thread_no = 0
local requests = {}

function setup(thread)
  thread_no = thread_no + 1
  thread:set("seed", thread_no)
end

local function body()
  local chosen, ops = {}, {}
  while #ops < size do
    local key = prefix .. math.random(0, keys - 1)
    if not chosen[key] then
      chosen[key] = true
      if op == "put" then
        local extra = ttl == "" and "" or (',"ttl":' .. ttl)
        ops[#ops + 1] = '{"op":"put","key":"' .. key .. '","value":' .. value .. extra .. '}'
      else
        ops[#ops + 1] = '{"op":"get","key":"' .. key .. '"}'
      end
    end
  end
  return '{"ops":[' .. table.concat(ops, ",") .. ']}'
end

function init(args)
  math.randomseed(os.time() * 1000 + 300 + (seed or 0))
  for i = 1, count do
    requests[i] = wrk.format("POST", "/v1/batch", headers, body())
  end
end

function request()
  return requests[math.random(1, count)]
end
