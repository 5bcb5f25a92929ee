-- POST a client_credentials request with HTTP Basic client authentication.
-- BASIC is base64("client_id:secret"), set by bench/server.py.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("BASIC") or "")

-- Count non-2xx answers so a run of errors cannot pass as throughput.
local bad = 0
function response(status, headers, body)
   if status ~= 200 then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   io.write(string.format("non2xx_in_thread0 %d\n", bad))
end
