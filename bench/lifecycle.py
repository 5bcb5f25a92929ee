#!/usr/bin/env python3
"""Introspection under wrk: requests/s and p50/p99 for a JWT access token
and for an opaque one, as a resource server that may see them (SQLite, the
release build). 64 connections, keep-alive, 5 s warm-up per row, median of
3 interleaved rounds of 10 s.

    python3 bench/lifecycle.py [--duration 10] [--rounds 3]
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ROOT, interleaved, report, wait_ready  # noqa: E402

BASE = "http://127.0.0.1:18480"


def call(path, body, headers):
    req = urllib.request.Request(BASE + path, data=body, headers=headers)
    return json.load(urllib.request.urlopen(req))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tessera"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="tessera-lc-bench-")
    log = open(os.path.join(work, "log"), "w")
    proc = subprocess.Popen([os.path.join(target, "release", "tessera"), "serve", "--data", os.path.join(work, "d"),
                             "--listen", "127.0.0.1:18480"], stdout=log, stderr=log)
    try:
        wait_ready(BASE + "/readyz")
        admin = open(os.path.join(work, "d", "admin.token")).read().strip()
        h = {"Authorization": "Bearer " + admin, "Content-Type": "application/json"}

        def register(meta):
            c = call("/admin/clients", json.dumps(meta).encode(), h)
            return c["client_id"], c["client_secret"]

        def basic(cid, sec):
            return base64.b64encode(f"{cid}:{sec}".encode()).decode()

        def token(cid, sec):
            return call("/token", b"grant_type=client_credentials",
                        {"Authorization": "Basic " + basic(cid, sec),
                         "Content-Type": "application/x-www-form-urlencoded"})["access_token"]

        jwt_app = register({"client_name": "jwt", "audiences": ["orders-api"]})
        opq_app = register({"client_name": "opaque", "audiences": ["orders-api"], "token_format": "opaque"})
        rs = register({"client_name": "rs", "introspection_audiences": ["orders-api"]})
        script = os.path.join(ROOT, "bench", "wrk", "introspect.lua")
        rows = [("introspect JWT access token", token(*jwt_app)), ("introspect opaque access token", token(*opq_app))]
        envs = {n: dict(os.environ, TOKEN=t, BASIC=basic(*rs)) for n, t in rows}
        for n, t in rows:
            check = call("/introspect", f"token={t}".encode(),
                         {"Authorization": "Basic " + basic(*rs), "Content-Type": "application/x-www-form-urlencoded"})
            assert check["active"] is True, check
        measured = [(n, BASE + "/introspect", script, envs[n]) for n, _ in rows]
        report(interleaved(measured, args, 64), args, 64, " (SQLite)")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
