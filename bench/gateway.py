#!/usr/bin/env python3
"""tessera gateway over loopback with wrk (every row sends the same
bearer token, so every row carries the same request bytes): the same upstream reached
directly, through the gateway without verification (a public route),
through the gateway verifying every request (token cache off: the cost of
a new token per request), and verifying with the token cache (clients
reusing their token). Keep-alive, 64 connections, 10 s warm-up per row,
median of 3 interleaved rounds of 10 s.

    python3 bench/gateway.py [--duration 10] [--rounds 3]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ROOT, interleaved, report, wait_ready  # noqa: E402


NGINX_CONF = """
worker_processes 2;
error_log stderr error;
pid nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
    upstream up { server 127.0.0.1:18281; keepalive 64; }
    server {
        listen 127.0.0.1:18284;
        location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tessera", "-p", "tessera-bench",
                    "--bin", "tessera", "--bin", "bare"], cwd=ROOT, check=True)
    release = os.path.join(target, "release")
    tessera = os.path.join(release, "tessera")
    work = tempfile.mkdtemp(prefix="tessera-gw-bench-")
    procs = []
    issuer = "http://127.0.0.1:18280"
    try:
        log = open(os.path.join(work, "log"), "w")
        procs.append(subprocess.Popen([tessera, "serve", "--data", os.path.join(work, "d"),
                                       "--listen", "127.0.0.1:18280"], stdout=log, stderr=log))
        procs.append(subprocess.Popen([os.path.join(release, "bare"), "127.0.0.1:18281"]))
        wait_ready(issuer + "/readyz")
        wait_ready("http://127.0.0.1:18281/fixed")
        for port, cache in [(18282, 10000), (18283, 0)]:
            cfg = os.path.join(work, f"gw{port}.toml")
            with open(cfg, "w") as f:
                f.write(f'token_cache = {cache}\n[[routes]]\nprefix = "/public"\npublic = true\n')
            procs.append(subprocess.Popen([tessera, "gateway", "--upstream", "http://127.0.0.1:18281",
                                           "--issuer", issuer, "--audience", issuer,
                                           "--listen", f"127.0.0.1:{port}", "--config", cfg],
                                          stdout=log, stderr=log))
        nginx = shutil.which("nginx")
        if nginx:
            # A mature reverse proxy on the same path, for reference: what
            # the second HTTP exchange costs on this machine.
            conf = os.path.join(work, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF)
            procs.append(subprocess.Popen([nginx, "-p", work, "-c", conf, "-g", "daemon off;"],
                                          stdout=log, stderr=log))
            wait_ready("http://127.0.0.1:18284/x")
        wait_ready("http://127.0.0.1:18282/public/x")
        wait_ready("http://127.0.0.1:18283/public/x")
        creds = open(os.path.join(work, "d", "quickstart.credentials")).read().strip()
        import base64
        req = urllib.request.Request(issuer + "/token", data=b"grant_type=client_credentials",
                                     headers={"Authorization": "Basic " + base64.b64encode(creds.encode()).decode(),
                                              "Content-Type": "application/x-www-form-urlencoded"})
        token = json.load(urllib.request.urlopen(req))["access_token"]
        env = dict(os.environ, TOKEN=token)
        bearer = os.path.join(ROOT, "bench", "wrk", "bearer.lua")
        rows = [
            ("direct to upstream", "http://127.0.0.1:18281/fixed", bearer),
            *([("nginx proxy_pass, keep-alive (reference)", "http://127.0.0.1:18284/x", bearer)] if nginx else []),
            ("gateway, no verification (public route)", "http://127.0.0.1:18282/public/x", bearer),
            ("gateway, verify + token cache (token reused)", "http://127.0.0.1:18282/x", bearer),
            ("gateway, verify every request (no cache)", "http://127.0.0.1:18283/x", bearer),
        ]
        rows = [(name, url, script, env) for name, url, script in rows]
        med = report(interleaved(rows, args, args.connections), args, args.connections)
        direct = med["direct to upstream"][0]
        proxy = med["gateway, no verification (public route)"][0]
        cached = med["gateway, verify + token cache (token reused)"][0]
        full = med["gateway, verify every request (no cache)"][0]
        print(f"\ndirect / gateway with cache: {direct / cached:.2f}x; "
              f"verification with cache adds {100 * (proxy / cached - 1):.1f}% to the proxy's cost; "
              f"without cache {100 * (proxy / full - 1):.0f}%")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
