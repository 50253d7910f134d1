-- Two-key writes on key pairs (benches/txn_cost.py): MODE "txn" (default) posts
-- POST /v1/txn comparing both keys (exists) and putting both; MODE "batch" posts the
-- same two puts as a POST /v1/batch (the same writes, not atomic), for comparison.
-- Env: PAIRS, comma-separated "a:b" key pairs (one is picked at random per request),
-- MODE.
local mode = os.getenv("MODE") or "txn"
local value = '{"name":"Alice","age":30,"tags":["a","b"]}'
local headers = { ["Content-Type"] = "application/json" }
local thread_no = 0
local requests = {}

function setup(thread)
  thread_no = thread_no + 1
  thread:set("seed", thread_no)
end

local function put(key)
  return '{"op":"put","key":"' .. key .. '","value":' .. value .. '}'
end

function init(args)
  math.randomseed(os.time() * 1000 + 1300 + (seed or 0))
  for a, b in string.gmatch(os.getenv("PAIRS") or "", "([^:,]+):([^:,]+)") do
    local writes = put(a) .. "," .. put(b)
    if mode == "batch" then
      requests[#requests + 1] = wrk.format("POST", "/v1/batch", headers,
        '{"ops":[' .. writes .. ']}')
    else
      local compare = '{"key":"' .. a .. '","exists":true},{"key":"' .. b .. '","exists":true}'
      requests[#requests + 1] = wrk.format("POST", "/v1/txn", headers,
        '{"compare":[' .. compare .. '],"success":[' .. writes .. '],"failure":[]}')
    end
  end
  assert(#requests > 0, "PAIRS is empty")
end

function request()
  return requests[math.random(1, #requests)]
end
