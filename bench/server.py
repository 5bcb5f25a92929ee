#!/usr/bin/env python3
"""tessera serve against the bare ceiling, with wrk over loopback.

Builds release binaries, starts `tessera serve` (SQLite, ES256, the
quickstart client) and `bare` (src/bin/bare.rs: form parsing + one ES256
signature, and a fixed 300-byte GET), then runs wrk with keep-alive and 64
connections: a 10 s warm-up per row, then 3 rounds of 10 s with the rows
interleaved, and reports the median requests/s and p50/p99 latency of each
row and the ratio of tessera to its ceiling.

    python3 bench/server.py [--duration 10] [--rounds 3] [--connections 64]
                            [--baseline PATH/TO/OLD/tessera]

With --baseline, a second `tessera serve` from that binary (an earlier
build: before/after a change) runs beside the current one, and its token
and JWKS rows join the same interleaved rounds.
"""
import argparse
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_ready(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"not ready: {url}")


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        raise ValueError(text)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def wrk(url, seconds, connections, script=None, env=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket = re.search(r"Socket errors:.*", out)
    if errors or socket:
        sys.exit(f"{url}: errors during the run:\n{out}")
    return rps, p50, p99


def cpu_seconds(pids):
    """User + system CPU time of the processes (all their threads) and of
    their children still running (nginx's workers), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    seen, todo, total = set(), list(pids), 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / tick


def interleaved(rows, args, connections):
    """Warms each row up once, then measures rounds with the rows
    interleaved. rows: (name, url, script, env[, pids]); with pids, the CPU
    time those processes spent during the run is divided by the requests
    served. Returns name -> [(rps, p50, p99, cpu_us_per_request or None)]
    per round."""
    rows = [r if len(r) == 5 else (*r, None) for r in rows]
    for name, url, script, env, _ in rows:
        print(f"warm-up {name} ({args.warmup} s)", file=sys.stderr)
        wrk(url, args.warmup, connections, script, env)
    results = {name: [] for name, *_ in rows}
    for r in range(args.rounds):
        for name, url, script, env, pids in rows:
            before = cpu_seconds(pids) if pids else None
            rps, p50, p99 = wrk(url, args.duration, connections, script, env)
            cpu = None
            if pids:
                cpu = (cpu_seconds(pids) - before) * 1e6 / max(rps * args.duration, 1)
            results[name].append((rps, p50, p99, cpu))
            print(f"round {r + 1} {name}: {rps:.0f}/s", file=sys.stderr)
    return results


def report(results, args, connections, note=""):
    """Prints the markdown table of medians; returns name -> (rps, p50, p99,
    cpu µs per request or None)."""
    def median(v, i):
        xs = [x[i] for x in v if len(x) > i and x[i] is not None]
        return statistics.median(xs) if xs else None
    med = {n: tuple(median(v, i) for i in range(4)) for n, v in results.items()}
    cpu = any(m[3] is not None for m in med.values())
    print(f"\nwrk -t2 -c{connections}, keep-alive, {args.warmup} s warm-up, "
          f"median of {args.rounds} interleaved runs of {args.duration} s{note}\n")
    print("| row | requests/s | p50 ms | p99 ms |" + (" CPU µs/request |" if cpu else "") + " all runs (req/s) |")
    print("|---|---|---|---|" + ("---|" if cpu else "") + "---|")
    for n, v in results.items():
        runs = ", ".join(f"{x[0]:.0f}" for x in v)
        c = ""
        if cpu:
            c = f" {med[n][3]:.1f} |" if med[n][3] is not None else " — |"
        print(f"| {n} | {med[n][0]:.0f} | {med[n][1]:.2f} | {med[n][2]:.2f} |{c} {runs} |")
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--baseline", help="an earlier tessera binary to measure beside this build")
    args = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-q", "-p", "tessera", "-p", "tessera-bench",
         "--bin", "tessera", "--bin", "bare"],
        cwd=ROOT, check=True)
    release = os.path.join(target, "release")
    data = tempfile.mkdtemp(prefix="tessera-bench-")
    procs = []
    try:
        log = open(os.path.join(data, "serve.log"), "w")
        procs.append(subprocess.Popen(
            [os.path.join(release, "tessera"), "serve", "--data", os.path.join(data, "d"),
             "--listen", "127.0.0.1:18180"], stdout=log, stderr=log))
        procs.append(subprocess.Popen([os.path.join(release, "bare"), "127.0.0.1:18181"]))
        if args.baseline:
            procs.append(subprocess.Popen(
                [args.baseline, "serve", "--data", os.path.join(data, "b"),
                 "--listen", "127.0.0.1:18182"], stdout=log, stderr=log))
        wait_ready("http://127.0.0.1:18180/readyz")
        wait_ready("http://127.0.0.1:18181/fixed")
        creds = open(os.path.join(data, "d", "quickstart.credentials")).read().strip()
        env = dict(os.environ, BASIC=base64.b64encode(creds.encode()).decode())
        script = os.path.join(ROOT, "bench", "wrk", "token.lua")
        rows = [
            ("bare token (ceiling)", "http://127.0.0.1:18181/token", script, env),
            ("tessera token", "http://127.0.0.1:18180/token", script, env),
            ("bare 300-byte GET (ceiling)", "http://127.0.0.1:18181/fixed", None, env),
            ("tessera JWKS", "http://127.0.0.1:18180/.well-known/jwks.json", None, env),
        ]
        if args.baseline:
            wait_ready("http://127.0.0.1:18182/readyz")
            old = open(os.path.join(data, "b", "quickstart.credentials")).read().strip()
            old_env = dict(os.environ, BASIC=base64.b64encode(old.encode()).decode())
            rows += [
                ("baseline token", "http://127.0.0.1:18182/token", script, old_env),
                ("baseline JWKS", "http://127.0.0.1:18182/.well-known/jwks.json", None, old_env),
            ]
        med = report(interleaved(rows, args, args.connections), args, args.connections)
        tok = med["bare token (ceiling)"][0] / med["tessera token"][0]
        get = med["bare 300-byte GET (ceiling)"][0] / med["tessera JWKS"][0]
        print(f"\nceiling / tessera: token {tok:.2f}x, JWKS {get:.2f}x")
        if args.baseline:
            tok = med["tessera token"][0] / med["baseline token"][0]
            get = med["tessera JWKS"][0] / med["baseline JWKS"][0]
            print(f"this build / baseline: token {tok:.2f}x, JWKS {get:.2f}x")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
