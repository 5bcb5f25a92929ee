-- GET with a bearer token (TOKEN, set by bench/gateway.py).
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
