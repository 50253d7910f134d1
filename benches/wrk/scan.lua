-- Ordered scans that follow their cursors: each connection walks the whole keyspace
-- page by page (GET /v1/kv?limit=N&cursor=C), starting over after the last page.
-- Run it with as many threads as connections (wrk -t2 -c2): a wrk thread's Lua state is
-- shared by its connections, and the cursor is one per thread.
-- Env: LIMIT (default 100), QUERY (extra parameters, e.g. "&values=false&match=key1*").
local limit = os.getenv("LIMIT") or "100"
local query = os.getenv("QUERY") or ""
local cursor = nil
local pages = 0

function request()
  local path = "/v1/kv?limit=" .. limit .. query
  if cursor then
    path = path .. "&cursor=" .. cursor
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  pages = pages + 1
  if status ~= 200 then
    cursor = nil
    return
  end
  cursor = string.match(body, '"next_cursor":"([^"]+)"}$')
end
