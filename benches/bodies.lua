-- wrk script: POSTs the JSON bodies of the file named by $BODIES, one per line, in turn.
-- Each thread formats every request once, at start; request() only hands the next one out, so
-- the client spends its CPU (which it shares with the server here) on sending, not on Lua.
local requests = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("BODIES")) do
    requests[#requests + 1] =
      wrk.format("POST", "/get-online-features", { ["Content-Type"] = "application/json" }, line)
  end
end

function request()
  i = i % #requests + 1
  return requests[i]
end
