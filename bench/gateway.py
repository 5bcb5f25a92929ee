#!/usr/bin/env python3
"""tessera gateway over loopback with wrk. Every row sends the same bearer
token, so every row carries the same request bytes, to the same upstream
(`bare`, a fixed 300-byte answer):

- directly;
- through nginx `proxy_pass` with upstream keep-alive (the reference);
- through the hyper floor (`hyper_proxy`: hyper's server and client in the
  gateway's thread layout, with none of its rules);
- through the gateway: a public route (no verification), verifying with
  the token cache (clients reusing their token), verifying every request
  (cache off: the cost of a new token per request);
- through nginx with `auth_request` to `tessera gateway --mode authz`
  (examples/nginx/tessera.conf), with and without the token cache.

Keep-alive, 64 connections, a warm-up per row, then rounds with the rows
interleaved; each row reports the median requests/s, p50, p99 and the CPU
time per request of the proxying processes (the gateway; nginx and its
workers; nginx plus the authz gateway), read from /proc.

    python3 bench/gateway.py [--duration 10] [--warmup 10] [--rounds 3]
                             [--baseline PATH/TO/OLD/tessera]
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
    # SITES
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--baseline", help="an earlier tessera binary whose gateway joins the rounds (before/after)")
    ap.add_argument("--only", help="comma-separated words: measure only the rows whose name holds one")
    ap.add_argument("--pingora", action="store_true",
                    help="also build bench/pingora-floor (outside the workspace; needs cmake) and measure it")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tessera", "-p", "tessera-bench",
                    "--bin", "tessera", "--bin", "bare", "--bin", "hyper_proxy"], cwd=ROOT, check=True)
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
        gateways = [(18282, 10000, tessera), (18283, 0, tessera)]
        if args.baseline:
            gateways.append((18285, 10000, args.baseline))
        pid = {}
        for port, cache, binary in gateways:
            cfg = os.path.join(work, f"gw{port}.toml")
            with open(cfg, "w") as f:
                f.write(f'token_cache = {cache}\n[[routes]]\nprefix = "/public"\npublic = true\n')
            procs.append(subprocess.Popen([binary, "gateway", "--upstream", "http://127.0.0.1:18281",
                                           "--issuer", issuer, "--audience", issuer,
                                           "--listen", f"127.0.0.1:{port}", "--config", cfg],
                                          stdout=log, stderr=log))
            pid[port] = procs[-1].pid
        # The hyper floor: a bare hyper proxy in the gateway's layout.
        procs.append(subprocess.Popen([os.path.join(release, "hyper_proxy"), "127.0.0.1:18286",
                                       "127.0.0.1:18281"], stdout=log, stderr=log))
        pid["hyper"] = procs[-1].pid
        if args.pingora:
            # The Pingora floor: a bare Pingora proxy, 2 threads.
            floor_dir = os.path.join(ROOT, "bench", "pingora-floor")
            floor_target = os.environ.get("TESSERA_PINGORA_TARGET_DIR", os.path.join(target, "pingora-floor"))
            subprocess.run(["cargo", "build", "--release", "-q"], cwd=floor_dir, check=True,
                           env=dict(os.environ, CARGO_TARGET_DIR=floor_target))
            procs.append(subprocess.Popen([os.path.join(floor_target, "release", "pingora-floor"),
                                           "127.0.0.1:18292", "127.0.0.1:18281", "2"], stdout=log, stderr=log))
            pid["pingora"] = procs[-1].pid
        # Forward auth: nginx asks `tessera gateway --mode authz` (with and
        # without its token cache) through examples/nginx/tessera.conf.
        for port, cache in [(18288, 10000), (18289, 0)]:
            cfg = os.path.join(work, f"authz{port}.toml")
            with open(cfg, "w") as f:
                f.write(f'mode = "authz"\ntoken_cache = {cache}\n[authz]\nflavor = "nginx"\n'
                        '[[routes]]\nprefix = "/public"\npublic = true\n')
            procs.append(subprocess.Popen([tessera, "gateway", "--issuer", issuer, "--audience", issuer,
                                           "--listen", f"127.0.0.1:{port}", "--config", cfg],
                                          stdout=log, stderr=log))
            pid[port] = procs[-1].pid
        nginx = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
        if nginx:
            # A mature reverse proxy on the same path, for reference: what
            # the second HTTP exchange costs on this machine.
            conf = os.path.join(work, "nginx.conf")
            site = open(os.path.join(ROOT, "examples", "nginx", "tessera.conf")).read()
            sites = ""
            for listen, authz in [(18290, 18288), (18291, 18289)]:
                sites += (site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
                          .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{authz};")
                          .replace("server 127.0.0.1:9000;", "server 127.0.0.1:18281;")
                          .replace("upstream tessera_authz", f"upstream tessera_authz_{listen}")
                          .replace("http://tessera_authz;", f"http://tessera_authz_{listen};")
                          .replace("upstream orders_service", f"upstream orders_service_{listen}")
                          .replace("http://orders_service;", f"http://orders_service_{listen};"))
            with open(conf, "w") as f:
                f.write(NGINX_CONF.replace("# SITES", sites))
            procs.append(subprocess.Popen([nginx, "-p", work, "-c", conf, "-g", "daemon off;"],
                                          stdout=log, stderr=log))
            pid["nginx"] = procs[-1].pid
            wait_ready("http://127.0.0.1:18284/x")
            wait_ready("http://127.0.0.1:18290/public/x")
            wait_ready("http://127.0.0.1:18291/public/x")
        wait_ready("http://127.0.0.1:18282/public/x")
        wait_ready("http://127.0.0.1:18283/public/x")
        wait_ready("http://127.0.0.1:18286/x")
        creds = open(os.path.join(work, "d", "quickstart.credentials")).read().strip()
        import base64
        req = urllib.request.Request(issuer + "/token", data=b"grant_type=client_credentials",
                                     headers={"Authorization": "Basic " + base64.b64encode(creds.encode()).decode(),
                                              "Content-Type": "application/x-www-form-urlencoded"})
        token = json.load(urllib.request.urlopen(req))["access_token"]
        env = dict(os.environ, TOKEN=token)
        bearer = os.path.join(ROOT, "bench", "wrk", "bearer.lua")
        upstream = procs[1].pid
        rows = [
            ("direct to upstream", "http://127.0.0.1:18281/fixed", bearer, [upstream]),
            *([("nginx proxy_pass, keep-alive (reference)", "http://127.0.0.1:18284/x", bearer, [pid["nginx"]])]
              if nginx else []),
            ("hyper floor: bare hyper proxy, same layout, no rules", "http://127.0.0.1:18286/x", bearer,
             [pid["hyper"]]),
            ("gateway, no verification (public route)", "http://127.0.0.1:18282/public/x", bearer, [pid[18282]]),
            ("gateway, verify + token cache (token reused)", "http://127.0.0.1:18282/x", bearer, [pid[18282]]),
            ("gateway, verify every request (no cache)", "http://127.0.0.1:18283/x", bearer, [pid[18283]]),
        ]
        if args.pingora:
            wait_ready("http://127.0.0.1:18292/x")
            rows.insert(3, ("pingora floor: bare Pingora proxy, 2 threads, no rules", "http://127.0.0.1:18292/x",
                            bearer, [pid["pingora"]]))
        if nginx:
            rows += [
                ("nginx auth_request -> tessera authz, token cache (token reused)", "http://127.0.0.1:18290/x",
                 bearer, [pid["nginx"], pid[18288]]),
                ("nginx auth_request -> tessera authz, no cache (as a new token per request)",
                 "http://127.0.0.1:18291/x", bearer, [pid["nginx"], pid[18289]]),
            ]
        if args.baseline:
            wait_ready("http://127.0.0.1:18285/public/x")
            rows += [
                ("baseline gateway, public route", "http://127.0.0.1:18285/public/x", bearer, [pid[18285]]),
                ("baseline gateway, verify + token cache", "http://127.0.0.1:18285/x", bearer, [pid[18285]]),
            ]
        rows = [(name, url, script, env, pids) for name, url, script, pids in rows]
        if args.only:
            words = args.only.split(",")
            rows = [r for r in rows if any(w in r[0] for w in words)]
        med = report(interleaved(rows, args, args.connections), args, args.connections)
        if args.only:
            ng = med.get("nginx proxy_pass, keep-alive (reference)")
            if ng:
                for name, m in med.items():
                    print(f"{name}: {m[0] / ng[0]:.2f}x nginx requests/s, p99 {m[2] / ng[2]:.2f}x")
            return
        direct = med["direct to upstream"][0]
        proxy = med["gateway, no verification (public route)"][0]
        cached = med["gateway, verify + token cache (token reused)"][0]
        full = med["gateway, verify every request (no cache)"][0]
        if nginx:
            ng = med["nginx proxy_pass, keep-alive (reference)"]
            floor = med["hyper floor: bare hyper proxy, same layout, no rules"]
            print(f"\nagainst nginx proxy_pass: gateway verify + cache {cached / ng[0]:.2f}x requests/s, "
                  f"p99 {med['gateway, verify + token cache (token reused)'][2] / ng[2]:.2f}x; "
                  f"public route {proxy / ng[0]:.2f}x; hyper floor {floor[0] / ng[0]:.2f}x")
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
