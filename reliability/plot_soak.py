"""Plots the soak scenario's samples: plot_soak.py SOAK.csv SOAK.png

Four panels over time: resident memory (MiB), open file descriptors, the
database's size (MiB; the audit log, which is kept for its retention of days
and so grows for the whole run, on the second axis) and the p99 latency of each 10 s window (ms), with the
request rate on the last panel's second axis.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    t = [float(r["t_s"]) / 60 for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    series = [
        ([int(r["rss_kib"]) / 1024 for r in rows], "RSS (MiB)"),
        ([int(r["fds"]) for r in rows], "open fds"),
        ([int(r["db_bytes"]) / 1048576 for r in rows], "database but audit log (MiB)"),
        ([float(r["p99_ms"]) for r in rows], "p99 latency (ms)"),
    ]
    for a, (values, label) in zip(ax, series):
        a.plot(t, values)
        a.set_ylabel(label)
        a.set_ylim(0, max(values + [1e-9]) * 1.2)
    rate = ax[3].twinx()
    rate.plot(t, [float(r["ops_per_s"]) for r in rows], color="grey", alpha=0.5)
    rate.set_ylabel("requests/s", color="grey")
    ax[3].set_xlabel("minutes")
    audit = ax[2].twinx()
    audit.plot(t, [int(r["audit_bytes"]) / 1048576 for r in rows], color="tab:orange", alpha=0.7)
    audit.set_ylabel("audit log (MiB)", color="tab:orange")
    audit.set_ylim(bottom=0)
    rate.set_ylim(bottom=0)
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle("tessera serve soak: one node on PostgreSQL, half capacity, rotations and revocations")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
