-- POST /introspect for one token (TOKEN) as a resource server (BASIC).
wrk.method = "POST"
wrk.body = "token=" .. (os.getenv("TOKEN") or "")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("BASIC") or "")
