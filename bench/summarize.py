#!/usr/bin/env python3
"""Summarize the `jwt` criterion benchmark as Markdown tables.

Reads target/criterion/<group>/<function>/new/{benchmark,estimates}.json
(written by `cargo bench -p tessera-bench --bench jwt`) and prints, for
verify and sign, one row per algorithm: the median ns/op (criterion's
median point estimate) of tessera-jose, the raw aws-lc-rs floor,
jsonwebtoken and jwt-simple, each one's ratio to the floor, then RSA key
generation, every benchmark with its 95% confidence interval, and the
issue's goals marked met / not met.

Usage: python3 bench/summarize.py [CRITERION_DIR]
CRITERION_DIR defaults to target/criterion at the workspace root.
Standard library only.
"""

import json
import os
import sys

ALGS = ["HS256", "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"]
LIBS = ["tessera", "floor", "typed-floor", "jsonwebtoken", "jwt-simple"]
ASYMMETRIC = [a for a in ALGS if a != "HS256"]


def load(root):
    """{(group, function): (median_ns, lower_ns, upper_ns)}"""
    out = {}
    for group in sorted(os.listdir(root)):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for func in sorted(os.listdir(gdir)):
            new = os.path.join(gdir, func, "new")
            est_path = os.path.join(new, "estimates.json")
            meta_path = os.path.join(new, "benchmark.json")
            if not os.path.exists(est_path) or not os.path.exists(meta_path):
                continue
            with open(meta_path) as f:
                meta = json.load(f)
            with open(est_path) as f:
                median = json.load(f)["median"]
            ci = median["confidence_interval"]
            key = (meta["group_id"], meta["function_id"])
            out[key] = (
                median["point_estimate"],
                ci["lower_bound"],
                ci["upper_bound"],
            )
    return out


def ns(v):
    return "—" if v is None else f"{v:,.0f}"


def ratio(v, floor):
    return "—" if v is None or not floor else f"{v / floor:.2f}x"


def get(data, op, alg, lib):
    hit = data.get((f"{op}-{alg}", lib))
    return hit[0] if hit else None


def table(data, op):
    lines = [
        f"### {op} (median ns/op; ratio = ns / floor ns)",
        "",
        "| alg | tessera | floor | typed-floor | jsonwebtoken | jwt-simple "
        "| tessera/floor | typed-floor/floor | jsonwebtoken/floor | jwt-simple/floor |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for alg in ALGS:
        v = {lib: get(data, op, alg, lib) for lib in LIBS}
        if all(x is None for x in v.values()):
            continue
        f = v["floor"]
        lines.append(
            f"| {alg} | {ns(v['tessera'])} | {ns(f)} | {ns(v['typed-floor'])} "
            f"| {ns(v['jsonwebtoken'])} | {ns(v['jwt-simple'])} | {ratio(v['tessera'], f)} "
            f"| {ratio(v['typed-floor'], f)} | {ratio(v['jsonwebtoken'], f)} "
            f"| {ratio(v['jwt-simple'], f)} |"
        )
    return lines


def keygen(data):
    rows = sorted(
        (int(func), est) for (group, func), est in data.items() if group == "rsa-keygen"
    )
    if not rows:
        return []
    lines = [
        "### RSA key generation, tessera `SigningKey::generate_rsa` (median ms)",
        "",
        "| bits | median ms | 95% CI ms |",
        "|---|--:|--:|",
    ]
    for bits, (m, lo, hi) in rows:
        lines.append(f"| {bits} | {m / 1e6:,.1f} | {lo / 1e6:,.1f} – {hi / 1e6:,.1f} |")
    return lines


def raw(data):
    lines = [
        "### Every benchmark: median and its 95% confidence interval (ns/op)",
        "",
        "| benchmark | median | lower | upper |",
        "|---|--:|--:|--:|",
    ]
    for (group, func), (m, lo, hi) in sorted(data.items()):
        lines.append(f"| {group}/{func} | {ns(m)} | {ns(lo)} | {ns(hi)} |")
    return lines


def goals(data):
    def r(op, alg):
        t, f = get(data, op, alg, "tessera"), get(data, op, alg, "floor")
        return None if t is None or not f else t / f

    def mark(ok):
        return "**met**" if ok else "**not met**"

    lines = ["### Goals", ""]
    misses = []
    for op in ["verify", "sign"]:
        for alg in ALGS:
            t = get(data, op, alg, "tessera")
            for peer in ["jsonwebtoken", "jwt-simple"]:
                p = get(data, op, alg, peer)
                if t is not None and p is not None and t >= p:
                    misses.append(f"{op} {alg}: {peer} {ns(p)} ns <= tessera {ns(t)} ns")
    lines.append(
        f"1. tessera faster than both peers for every algorithm, verify and sign: "
        f"{mark(not misses)}" + ("" if not misses else " (" + "; ".join(misses) + ")")
    )

    def bound(op, algs, limit):
        rs = [(a, r(op, a)) for a in algs if r(op, a) is not None]
        bad = [f"{a} {x:.2f}x" for a, x in rs if x > limit]
        worst = max(rs, key=lambda p: p[1]) if rs else None
        detail = ", ".join(f"{a} {x:.2f}x" for a, x in rs)
        return mark(not bad), detail, worst

    m, d, _ = bound("verify", ASYMMETRIC, 1.05)
    lines.append(f"2. verify within 1.05x of the floor for {', '.join(ASYMMETRIC)}: {m} ({d})")
    m, d, _ = bound("verify", ["HS256"], 2.0)
    lines.append(f"3. HS256 verify within 2x of raw HMAC: {m} ({d})")
    m, d, _ = bound("sign", ASYMMETRIC, 1.05)
    lines.append(f"4. sign within 1.05x of the floor for every asymmetric algorithm: {m} ({d})")
    m, d, _ = bound("sign", ["HS256"], 1.5)
    lines.append(f"5. HS256 sign within 1.5x of raw HMAC: {m} ({d})")
    return lines


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "target", "criterion")
    data = load(root)
    if not data:
        sys.exit(f"no criterion results under {root}")
    out = []
    for part in (table(data, "verify"), table(data, "sign"), keygen(data), goals(data), raw(data)):
        if part:
            out.extend(part)
            out.append("")
    print("\n".join(out).rstrip())


if __name__ == "__main__":
    main()
