-- consent.lua: the consent module's B4 job, as an OpenResty developer would
-- write it with Debian's libnginx-mod-http-lua (bench/peers/README.md).
--
--   init_by_lua:          consent.init{...}        keys, purposes, strip rules
--                         consent.preload(subject, record)   the cache entry
--   access_by_lua:        consent.access(check)
--   header_filter_by_lua: consent.header_filter(check)
--
-- The server must declare `set $consent_purposes ""; set $consent_subject "";`
-- for proxy_set_header to read. Per request: the UID token from the cookie
-- (opened with libsodium through the FFI, memoized per worker by token text),
-- the subject's granted purposes from a lua_shared_dict (a miss means the
-- defaults: there is no Redis behind it), Sec-GPC, then the strip rules on
-- the query and the Cookie header, and the upstream's Set-Cookie on the way
-- back. No PURL tokens, choice cookies, Redis, channel or metrics.

local ffi = require "ffi"
local bit = require "bit"
local b64 = require "ngx.base64"
local lrucache = require "resty.lrucache"

local band, bor, bnot, lshift = bit.band, bit.bor, bit.bnot, bit.lshift
local byte, char, find, sub, lower, gsub, format =
    string.byte, string.char, string.find, string.sub, string.lower, string.gsub, string.format
local concat = table.concat
local ngx, ngx_var, ngx_req, ngx_header = ngx, ngx.var, ngx.req, ngx.header

ffi.cdef [[
int sodium_init(void);
int crypto_aead_xchacha20poly1305_ietf_decrypt(unsigned char *m, unsigned long long *mlen_p,
    unsigned char *nsec, const unsigned char *c, unsigned long long clen,
    const unsigned char *ad, unsigned long long adlen,
    const unsigned char *npub, const unsigned char *k);
int crypto_generichash(unsigned char *out, size_t outlen, const unsigned char *in,
    unsigned long long inlen, const unsigned char *key, size_t keylen);
]]

local function load_sodium()
    local ok, lib = pcall(ffi.load, "libsodium.so.23")  -- Debian's libsodium23 (no -dev symlink needed)
    if not ok then lib = ffi.load("sodium") end
    assert(lib.sodium_init() >= 0, "sodium_init failed")
    return lib
end
local sodium = load_sodium()

local _M = {}

-- set by init()
local token_key, token_kid, pseudonym_key         -- ffi buffers, number
local names, npurposes = {}, 0                     -- purpose index (0-based) -> name; how many
local all_mask, default_mask, gpc_mask = 0, 0, 0
local uid_name, uid_lower, uid_bit                -- the cookie's name, lowercased, its purpose's bit
local arg_rules, cookie_rules                     -- {exact = {name = mask}, prefixes = {{p, mask}}}
local dict                                        -- the lua_shared_dict
local memo                                        -- token text -> {subject, expires_at, pseudonym}
local purposes_text = {}                          -- granted mask -> "service,billing,..."

-- per worker scratch buffers (the module is required before the fork)
local MAX_TOKEN = 512
local NONCE, TAG, HEADER = 24, 16, 5
local MIN_RAW = HEADER + NONCE + TAG + 19         -- 8 + 8 + 1 + 1 (subject) + 1
local ptbuf = ffi.new("unsigned char[?]", 512)
local ptlen = ffi.new("unsigned long long[1]")
local hashbuf = ffi.new("unsigned char[16]")

local function read_line(path)
    local f = assert(io.open(path, "r"))
    local s = f:read("*a")
    f:close()
    return (gsub(s, "\n$", ""))
end

local function unhex(h)
    return (gsub(h, "%x%x", function(x) return char(tonumber(x, 16)) end))
end

local function compile_rules(list)
    -- list: {{purpose, {pattern, ...}}, ...}; ASCII case-insensitive names
    local rules = { exact = {}, prefixes = {} }
    for _, r in ipairs(list) do
        local m = 0
        for i = 0, npurposes - 1 do
            if names[i] == r[1] then m = lshift(1, i) end
        end
        assert(m ~= 0, "strip rule names an undeclared purpose: " .. r[1])
        for _, p in ipairs(r[2]) do
            p = lower(p)
            if sub(p, -1) == "*" then
                rules.prefixes[#rules.prefixes + 1] = { sub(p, 1, -2), m }
            else
                rules.exact[p] = bor(rules.exact[p] or 0, m)
            end
        end
    end
    return rules
end

-- The purposes that claim a (raw or decoded) name.
local function owners(rules, name)
    name = lower(name)
    local m = rules.exact[name] or 0
    local prefixes = rules.prefixes
    for i = 1, #prefixes do
        local p = prefixes[i]
        if sub(name, 1, #p[1]) == p[1] then m = bor(m, p[2]) end
    end
    return m
end

local function mask_of(record)
    -- a consent record (field -> "1"/"0") over the defaults
    if record.erased == "1" then return 0, true end
    local m = default_mask
    for i = 0, npurposes - 1 do
        local v = record[names[i]]
        if v == "1" then m = bor(m, lshift(1, i)) elseif v == "0" then m = band(m, bnot(lshift(1, i))) end
    end
    return m, false
end

--[[ conf = {
  token_key_file = "...", kid = 1, pseudonym_key_file = "...",
  purposes = {{"service", "granted"}, {"analysis", "denied gpc"}, ...},
  uid_cookie = "__Host-vid", uid_purpose = "analysis",
  strip_args = {{"campaigns", {"utm_*", ...}}, ...}, strip_cookies = {...},
  dict = "consent", memo_size = 4096 } ]]
function _M.init(conf)
    local suite, hex = string.match(read_line(conf.token_key_file), "^(%S+) (%x+)$")
    assert(suite == "xchacha20poly1305" and #hex == 64, "token key file: want 'xchacha20poly1305 <64 hex>'")
    token_key = ffi.new("unsigned char[32]", unhex(hex))
    token_kid = conf.kid or 1
    local phex = read_line(conf.pseudonym_key_file)
    assert(#phex == 64 and string.match(phex, "^%x+$"), "pseudonym key file: want 64 hex")
    pseudonym_key = ffi.new("unsigned char[32]", unhex(phex))

    for i, p in ipairs(conf.purposes) do
        local bitv = lshift(1, i - 1)
        names[i - 1] = p[1]
        npurposes = i
        all_mask = bor(all_mask, bitv)
        if find(p[2], "^granted") then default_mask = bor(default_mask, bitv) end
        if find(p[2], "gpc", 1, true) then gpc_mask = bor(gpc_mask, bitv) end
    end
    uid_name, uid_lower = conf.uid_cookie, lower(conf.uid_cookie)
    uid_bit = 0
    for i = 0, npurposes - 1 do
        if names[i] == conf.uid_purpose then uid_bit = lshift(1, i) end
    end
    arg_rules = compile_rules(conf.strip_args)
    cookie_rules = compile_rules(conf.strip_cookies)
    dict = assert(ngx.shared[conf.dict or "consent"], "lua_shared_dict missing")
    memo = assert(lrucache.new(conf.memo_size or 4096))
end

-- What Redis would have put in the cache: the granted mask, -1 for erased.
function _M.preload(subject, record)
    local m, erased = mask_of(record)
    assert(dict:set(subject, erased and -1 or m))
end

local function purposes_of(mask)
    local s = purposes_text[mask]
    if not s then
        local t = {}
        for i = 0, npurposes - 1 do
            if band(mask, lshift(1, i)) ~= 0 then t[#t + 1] = names[i] end
        end
        s = concat(t, ",")
        purposes_text[mask] = s
    end
    return s
end

local function u64(s, at)  -- big-endian; exact below 2^53
    local v = 0
    for i = at, at + 7 do v = v * 256 + byte(s, i) end
    return v
end

local function printable(s)
    return not find(s, "[^\32-\126]")
end

-- Opens a UID token: (entry, "valid") or (nil, status).
local function open_uid(text, now)
    local e = memo:get(text)
    if e then
        if e.expires_at <= now then return nil, "expired" end
        return e, "valid"
    end
    local n = #text
    -- canonical unpadded base64url only: alphabet, length, zero trailing bits
    if n > MAX_TOKEN or n % 4 == 1 or find(text, "[^%w_%-]") then return nil, "invalid" end
    local raw = b64.decode_base64url(text)
    if not raw or #raw < MIN_RAW or b64.encode_base64url(raw) ~= text then return nil, "invalid" end
    local v, kind, suite, kid = byte(raw, 1), byte(raw, 2), byte(raw, 3), byte(raw, 4) * 256 + byte(raw, 5)
    if v ~= 1 or kind ~= 2 or suite ~= 1 or kid == 0 then return nil, "invalid" end
    if kid ~= token_kid then return nil, "unknown_key" end
    local clen = #raw - HEADER - NONCE
    if clen - TAG > 512 then return nil, "invalid" end
    local rawp = ffi.cast("const unsigned char *", raw)
    if sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ptbuf, ptlen, nil, rawp + HEADER + NONCE, clen,
            rawp, HEADER, rawp + HEADER, token_key) ~= 0 then
        return nil, "invalid"
    end
    local pt = ffi.string(ptbuf, ptlen[0])
    local sl = byte(pt, 17)
    if not sl or sl < 1 or sl > 64 or #pt < 18 + sl then return nil, "invalid" end
    local cl = byte(pt, 18 + sl)
    if cl > 64 or #pt ~= 18 + sl + cl then return nil, "invalid" end
    local subject = sub(pt, 18, 17 + sl)
    if not printable(subject) or not printable(sub(pt, 19 + sl)) then return nil, "invalid" end
    local iat, exp = u64(pt, 1), u64(pt, 9)
    if iat > now + 300 then return nil, "invalid" end
    if exp <= now then return nil, "expired" end
    assert(sodium.crypto_generichash(hashbuf, 16, subject, sl, pseudonym_key, 32) == 0)
    local h = ffi.string(hashbuf, 16)
    local hex = gsub(h, ".", function(c) return format("%02x", byte(c)) end)
    e = { subject = subject, expires_at = exp, pseudonym = hex }
    memo:set(text, e)
    return e, "valid"
end

local function unescape(name)  -- %XX only; '+' and bad escapes stay as they are
    return (gsub(name, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function listed(list, seen, name)
    if not seen[name] then
        seen[name] = true
        list[#list + 1] = name
    end
end

function _M.access(check)
    local now = ngx.time()

    -- the Cookie header: split once, find the UID cookie
    local cookie = ngx_var.http_cookie
    local pairs_, pnames, token = {}, {}, nil
    if cookie then
        local pos, n = 1, #cookie
        while pos <= n do
            local semi = find(cookie, ";", pos, true) or n + 1
            local s, e = pos, semi - 1
            while s <= e and (byte(cookie, s) == 32 or byte(cookie, s) == 9) do s = s + 1 end
            while e >= s and (byte(cookie, e) == 32 or byte(cookie, e) == 9) do e = e - 1 end
            if s <= e then
                local pair = sub(cookie, s, e)
                local eq = find(pair, "=", 1, true)
                local name = eq and gsub(sub(pair, 1, eq - 1), "[ \t]+$", "") or pair
                pairs_[#pairs_ + 1] = pair
                pnames[#pnames + 1] = name
                if not token and lower(name) == uid_lower then
                    token = eq and gsub(gsub(sub(pair, eq + 1), "^[ \t]+", ""), "[ \t]+$", "") or ""
                end
            end
            pos = semi + 1
        end
    end

    -- the decision: cached record or defaults, then GPC
    local granted, subject, status = default_mask, nil, "none"
    if token then
        local e
        e, status = open_uid(token, now)
        if e then
            local m = dict:get(e.subject)
            if m == -1 then
                granted = 0                      -- erased: nothing, and no subject
            else
                granted = m or default_mask      -- a miss: the defaults (no Redis here)
                subject = e.pseudonym
            end
        end
    end
    if ngx_var.http_sec_gpc == "1" then granted = band(granted, bnot(gpc_mask)) end
    local denied = band(all_mask, bnot(granted))
    local stripped, seen = check and {} or nil, check and {} or nil

    -- the query: drop arguments of denied purposes, keep the rest byte for byte
    local args = ngx_var.args
    if args and args ~= "" and denied ~= 0 then
        local kept, removed, pos, n = {}, false, 1, #args
        while pos <= n do
            local amp = find(args, "&", pos, true) or n + 1
            if amp > pos then
                local seg = sub(args, pos, amp - 1)
                local eq = find(seg, "=", 1, true)
                local name = eq and sub(seg, 1, eq - 1) or seg
                if find(name, "%", 1, true) then name = unescape(name) end
                if band(owners(arg_rules, name), denied) ~= 0 then
                    removed = true
                    if check then listed(stripped, seen, name) end
                else
                    kept[#kept + 1] = seg
                end
            end
            pos = amp + 1
        end
        if removed then ngx_req.set_uri_args(concat(kept, "&")) end
    end

    -- the cookies: the UID cookie always goes, and those of denied purposes
    if cookie then
        local kept, removed = {}, false
        for i = 1, #pairs_ do
            local name = pnames[i]
            if lower(name) == uid_lower or band(owners(cookie_rules, name), denied) ~= 0 then
                removed = true
                if check then listed(stripped, seen, name) end
            else
                kept[#kept + 1] = pairs_[i]
            end
        end
        if removed then
            if #kept > 0 then ngx_req.set_header("Cookie", concat(kept, "; "))
            else ngx_req.clear_header("Cookie") end
        end
    end

    local purposes = purposes_of(granted)
    ngx_var.consent_purposes = purposes
    if subject then ngx_var.consent_subject = subject end
    local ctx = ngx.ctx
    ctx.consent_denied = denied
    ctx.consent_had_uid = token ~= nil
    if check then
        ctx.consent_stripped = concat(stripped, ",")
        ctx.consent_purposes = purposes
        ctx.consent_status = status
    end
end

function _M.header_filter(check)
    local ctx = ngx.ctx
    local denied = ctx.consent_denied
    if not denied then return end                -- access did not run (e.g. an early error)
    if denied ~= 0 then
        local sc = ngx_header["Set-Cookie"]
        if sc then
            if type(sc) == "string" then sc = { sc } end
            local kept, removed = {}, false
            for i = 1, #sc do
                local name = string.match(sc[i], "^[ \t]*([^=;]-)[ \t]*[=;]") or sc[i]
                if band(owners(cookie_rules, name), denied) ~= 0 then removed = true
                else kept[#kept + 1] = sc[i] end
            end
            if removed then ngx_header["Set-Cookie"] = #kept > 0 and kept or nil end
        end
        -- the UID cookie is cleared when its purpose is denied
        if ctx.consent_had_uid and band(denied, uid_bit) ~= 0 then
            local cur = ngx_header["Set-Cookie"]
            local clear = uid_name .. "=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
            if cur == nil then ngx_header["Set-Cookie"] = clear
            elseif type(cur) == "string" then ngx_header["Set-Cookie"] = { cur, clear }
            else cur[#cur + 1] = clear; ngx_header["Set-Cookie"] = cur end
        end
    end
    if check then
        if ctx.consent_stripped ~= "" then ngx_header["X-Stripped"] = ctx.consent_stripped end
        ngx_header["X-Purposes"] = ctx.consent_purposes
        ngx_header["X-Token"] = ctx.consent_status
    end
end

return _M
