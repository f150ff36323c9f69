"""Prints, per message size, each algorithm's median busbw over the repeated sweeps and its ratio
to native's, from the JSON lines of `braid bench allreduce --json` (all sweeps from one command,
so every ratio compares numbers measured together)."""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
sizes = sorted({r["bytes"] for r in rows})
algorithms = [a for a in ["ring", "star", "rhd", "auto"] if any(r["algorithm"] == a for r in rows)]
by = {}
for key in {(r["bytes"], r["algorithm"]) for r in rows}:
    group = [r for r in rows if (r["bytes"], r["algorithm"]) == key]
    median = dict(group[0])
    median["busbw_gbps"] = statistics.median(r["busbw_gbps"] for r in group)
    by[key] = median
ranks = rows[0]["ranks"]
repeats = len(rows) // (len(sizes) * (len(algorithms) + 1))
print(f"# ranks={ranks}; median busbw GB/s over {repeats} sweeps, (ratio to native); auto shows its pick")
print(f"{'bytes':>11} {'native':>8} " + " ".join(f"{a:>18}" for a in algorithms))
worst_auto = None
for size in sizes:
    native = by[(size, "native")]["busbw_gbps"]
    cells = []
    for a in algorithms:
        r = by[(size, a)]
        ratio = r["busbw_gbps"] / native if native > 0 else float("nan")
        label = f"{r['busbw_gbps']:.3f} ({ratio:.2f})"
        if a == "auto":
            label = f"{r['chosen'][:4]} " + label
            worst_auto = ratio if worst_auto is None else min(worst_auto, ratio)
        cells.append(f"{label:>18}")
    print(f"{size:>11} {native:>8.3f} " + " ".join(cells))
if worst_auto is not None:
    print(f"# auto's worst busbw ratio to native over these sizes: {worst_auto:.2f} "
          f"(time ratio {1 / worst_auto:.2f})")
