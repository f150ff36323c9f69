"""Tables and a plot for bench/shm_allreduce.sh: reads the jsonl files in WORK and writes the
markdown report and the PNG. Usage: shm_allreduce_report.py WORK OUT.md OUT.png COMMAND"""
import json
import statistics
import sys
from pathlib import Path

work, out_md, out_png, command = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def rows(name):
    path = work / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def median_by(items, key, value):
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(value(item))
    return {k: (statistics.median(v), v) for k, v in groups.items()}


stream = [r["gbps"] for r in rows("stream.jsonl")]
bandwidth = statistics.median(stream)
limit = bandwidth / 5
np2 = rows("np2.jsonl") + [dict(r, algorithm="shm+registered") for r in rows("np2_registered.jsonl")]
busbw = median_by(np2, lambda r: r["algorithm"], lambda r: r["busbw_gbps"])
native = busbw["native"][0]
load = (work / "load").read_text().split("\n")

md = ["# Shared-memory and hierarchical allreduce", "",
      f"Command: `{command}` (each measurement repeated, medians). Load average before: "
      f"{load[0]}; after: {load[1] if len(load) > 1 else '?'} (above 2 means other work shared "
      "the 2 cores: absolute numbers are then low, ratios less affected).", "",
      f"## np=2, 64 MiB float32", "",
      f"Limit: STREAM-style reduce a[i] += b[i], 2 ranks at once, 64 MiB each: "
      f"{bandwidth:.2f} GB/s (runs: {', '.join(f'{x:.2f}' for x in stream)}); "
      f"limit = bandwidth / 5 = **{limit:.2f} GB/s** busbw. The limit assumes every byte of the "
      "5 S of traffic comes from DRAM; the pipelined `shm` copies a peer's reduced step while it "
      "is still in cache (docs/algorithms.md), so the registered path can pass it.", "",
      "| algorithm | busbw GB/s (median) | runs | busbw / limit (target >= 0.8) | / native (target >= 2) |",
      "|---|---:|---|---:|---:|"]
order = sorted(busbw, key=lambda a: -busbw[a][0])
for algorithm in order:
    m, runs = busbw[algorithm]
    md.append(f"| {algorithm} | {m:.3f} | {', '.join(f'{x:.2f}' for x in runs)} | "
              f"{m / limit:.2f} | {m / native:.2f} |")
best = order[0]
md += ["", f"Best: **{best}**, {busbw[best][0] / limit:.2f} of the limit, "
       f"{busbw[best][0] / native:.2f}x MPI_Allreduce.", ""]

slow = rows("slowlink.jsonl")
times = median_by(slow, lambda r: r["algorithm"], lambda r: r["time_us"] / 1e6)
if slow:
    md += ["## np=4, two emulated nodes of two ranks, `launch/braid-slowlink --rate 1gbit`, 16 MiB", "",
           "`--ranks-per-node 2`: shared memory within an emulated node, TCP over the shaped "
           "loopback between them (flat ring sends every byte over it).", "",
           "| algorithm | seconds per allreduce (median) | runs |", "|---|---:|---|"]
    for algorithm in ("ring", "hierarchical"):
        if algorithm in times:
            m, runs = times[algorithm]
            md.append(f"| {algorithm} | {m:.3f} | {', '.join(f'{x:.3f}' for x in runs)} |")
    if "ring" in times and "hierarchical" in times:
        md += ["", f"hierarchical is **{times['ring'][0] / times['hierarchical'][0]:.2f}x** faster "
               "than ring (target >= 2.5x; it sends a third of ring's bytes over the link)."]
md += ["", "![shm allreduce](shm_allreduce.png)", ""]
Path(out_md).write_text("\n".join(md))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2 if slow else 1, figsize=(11 if slow else 6, 4), squeeze=False)
ax = axes[0][0]
ax.bar(order, [busbw[a][0] for a in order], color="tab:blue")
ax.axhline(limit, color="black", linestyle="--", label=f"limit {limit:.2f} GB/s")
ax.axhline(0.8 * limit, color="gray", linestyle=":", label="0.8 x limit")
ax.set_ylabel("busbw GB/s")
ax.set_title("np=2, 64 MiB float32")
ax.tick_params(axis="x", rotation=30)
ax.legend()
if slow:
    ax = axes[0][1]
    names = [a for a in ("ring", "hierarchical") if a in times]
    ax.bar(names, [times[a][0] for a in names], color=["tab:red", "tab:green"][: len(names)])
    ax.set_ylabel("seconds per allreduce")
    ax.set_title("np=4, 2 nodes x 2, 1 Gbit/s link, 16 MiB")
fig.tight_layout()
fig.savefig(out_png, dpi=100)
print(Path(out_md).read_text())
