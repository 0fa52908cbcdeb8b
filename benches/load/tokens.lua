-- wrk script of the gw load benchmark: every request carries an `Authorization` header
-- taken round-robin from the token pool file given after `--` (one `Bearer ...` per line).
-- Requests are formatted once in `init`, so wrk spends no time building them.

local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local pool = args[1] or error("usage: wrk ... -s tokens.lua URL -- TOKEN_FILE")
  requests = {}
  for line in io.lines(pool) do
    if line ~= "" then
      requests[#requests + 1] = wrk.format("GET", nil, { ["Authorization"] = line })
    end
  end
  if #requests == 0 then error("empty token pool " .. pool) end
  -- Threads start at different places in the pool.
  i = ((id or 0) * 7) % #requests
end

function request()
  i = i % #requests + 1
  return requests[i]
end
