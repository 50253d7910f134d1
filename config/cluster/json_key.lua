-- The `key` of a PUT /kv/insert body, decoded exactly as RustKV decodes it: every
-- JSON escape (\" \\ \/ \b \f \n \r \t, \uXXXX with surrogate pairs) turned into
-- UTF-8. HAProxy 2.6's json_query decodes \uXXXX to a single byte and gives up on
-- \/, so a key written with those escapes would hash to another shard than the
-- same key in a path. Answers "" (no key: the proxy then refuses the request with
-- a 400) for a body that is not a JSON object with a string "key". Not nil: a
-- converter answering nil leaves its input, the whole body, as the sample.
-- Used as: req.body,lua.json_key

local SIMPLE = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f',
                 n = '\n', r = '\r', t = '\t' }

local function skip_ws(s, i)
    return s:find('[^ \t\r\n]', i) or (#s + 1)
end

local function hex4(s, i)
    local digits = s:sub(i, i + 3)
    if #digits ~= 4 or digits:find('[^0-9a-fA-F]') then return nil end
    return tonumber(digits, 16)
end

-- The string starting at s[i] == '"': its text and the index after it.
local function parse_string(s, i)
    local out, n = {}, 0
    i = i + 1
    while true do
        local j = s:find('["\\\0-\31]', i)
        if not j then return nil end
        n = n + 1; out[n] = s:sub(i, j - 1)
        local c = s:sub(j, j)
        if c == '"' then return table.concat(out), j + 1 end
        if c ~= '\\' then return nil end -- a raw control character
        local e = s:sub(j + 1, j + 1)
        if SIMPLE[e] then
            n = n + 1; out[n] = SIMPLE[e]; i = j + 2
        elseif e == 'u' then
            local cp = hex4(s, j + 2)
            if not cp then return nil end
            i = j + 6
            if cp >= 0xD800 and cp <= 0xDBFF then
                local lo = s:sub(i, i + 1) == '\\u' and hex4(s, i + 2)
                if not lo or lo < 0xDC00 or lo > 0xDFFF then return nil end
                cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
                i = i + 6
            elseif cp >= 0xDC00 and cp <= 0xDFFF then
                return nil -- a lone low surrogate is not text
            end
            n = n + 1; out[n] = utf8.char(cp)
        else
            return nil
        end
    end
end

-- The index after the JSON value at s[i].
local function skip_value(s, i)
    local c = s:sub(i, i)
    if c == '"' then
        local _, after = parse_string(s, i)
        return after
    end
    if c ~= '{' and c ~= '[' then
        local after = s:find('[,}%]%s]', i)
        return after or (#s + 1)
    end
    local depth = 0
    while i <= #s do
        c = s:sub(i, i)
        if c == '"' then
            local _, after = parse_string(s, i)
            if not after then return nil end
            i = after
        else
            if c == '{' or c == '[' then depth = depth + 1 end
            if c == '}' or c == ']' then depth = depth - 1 end
            i = i + 1
            if depth == 0 then return i end
        end
    end
    return nil
end

local function json_key(body)
    if not body then return nil end
    local i = skip_ws(body, 1)
    if body:sub(i, i) ~= '{' then return nil end
    i = i + 1
    while true do
        i = skip_ws(body, i)
        if body:sub(i, i) ~= '"' then return nil end
        local name, after = parse_string(body, i)
        if not name then return nil end
        i = skip_ws(body, after)
        if body:sub(i, i) ~= ':' then return nil end
        i = skip_ws(body, i + 1)
        if name == 'key' then
            if body:sub(i, i) ~= '"' then return nil end
            return (parse_string(body, i))
        end
        i = skip_value(body, i)
        if not i then return nil end
        i = skip_ws(body, i)
        if body:sub(i, i) ~= ',' then return nil end
        i = i + 1
    end
end

core.register_converters('json_key', function(body) return json_key(body) or '' end)
