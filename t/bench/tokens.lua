-- wrk script for t/bench: every request carries a token never sent before.
--
--   wrk -t2 -c16 -d10s -s tokens.lua http://IP:PORT/path -- PREFIX HOST [COOKIE [AUTH]]
--
-- Thread k (0-based, in the order wrk creates them) reads PREFIX.k, one
-- base64 token per line (t/bench/tokens.py writes one shard per thread), and
-- sends each line once as "Authorization: Negotiate <token>".  Lines are read
-- lazily, one per request, so no thread gets a head start while another loads
-- its file.  PREFIX "-" sends no Authorization at all (the static ceiling
-- goes through the same Lua request path).  HOST is the Host header (the
-- name the token was made for, with the port).  COOKIE, when given, is sent
-- as the Cookie header of every request (the session scenario; "" for none).
-- AUTH, when given, is the Authorization header of every request (the
-- password scenarios: one user's Basic credentials).
--
-- A thread that runs out of tokens never reuses one: it sends the request
-- without Authorization (the server answers 401, counted by wrk as non-2xx)
-- and counts it in "exhausted"; the harness then discards the run and
-- repeats it with more tokens.  done() prints one machine-readable line:
--   KDBENCH requests=.. duration_us=.. status_errors=.. connect=.. read=..
--           write=.. timeout=.. tokens_used=.. tokens_exhausted=..

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local prefix = args[1] or "-"
   host = args[2]
   cookie = args[3]
   if cookie == "" then
      cookie = nil
   end
   auth = args[4]
   used, exhausted = 0, 0
   if prefix ~= "-" then
      file = assert(io.open(prefix .. "." .. tid, "r"))
   end
end

function request()
   local headers = {Host = host}
   if cookie then
      headers["Cookie"] = cookie
   end
   if auth then
      headers["Authorization"] = auth
   end
   if file then
      local tok = file:read("*l")
      if tok and #tok > 0 then
         used = used + 1
         headers["Authorization"] = "Negotiate " .. tok
      else
         exhausted = exhausted + 1
      end
   end
   return wrk.format("GET", wrk.path, headers)
end

function done(summary, latency, requests)
   local u, x = 0, 0
   for _, t in ipairs(threads) do
      u = u + (t:get("used") or 0)
      x = x + (t:get("exhausted") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "KDBENCH requests=%d duration_us=%d status_errors=%d connect=%d read=%d " ..
      "write=%d timeout=%d tokens_used=%d tokens_exhausted=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read,
      e.write, e.timeout, u, x))
end
