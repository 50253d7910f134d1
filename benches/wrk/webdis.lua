-- webdis (an HTTP front for Redis) with the same access pattern as get.lua / put.lua.
-- Env: KEYS (default 10000), PREFIX (default "key"), MODE "get" (GET /GET/<key>) or
-- "put" (PUT /SET/<key>, the value as the body, as webdis takes it).
local keys = tonumber(os.getenv("KEYS") or "10000")
local prefix = os.getenv("PREFIX") or "key"
local mode = os.getenv("MODE") or "get"
local value = '{"name":"Alice","age":30,"tags":["a","b"]}'
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("seed", thread_no)
end

function init(args)
  math.randomseed(os.time() * 1000 + 700 + (seed or 0))
end

function request()
  local key = prefix .. math.random(0, keys - 1)
  if mode == "put" then
    return wrk.format("PUT", "/SET/" .. key, nil, value)
  end
  return wrk.format("GET", "/GET/" .. key)
end
