"""bench/plan.sh's report: predicted against measured step time per cell.

Usage: plan_report.py CELLS.jsonl OUT.md OUT.png COMMAND
"""
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    cells_path, md_path, png_path, command = sys.argv[1:5]
    lines = [json.loads(line) for line in open(cells_path) if line.strip()]
    skipped = [c for c in lines if "skipped" in c]
    cells = [c for c in lines if "skipped" not in c]
    for c in cells:
        c["error"] = (c["predicted_ms"] - c["measured_ms"]) / c["measured_ms"]
    mape = sum(abs(c["error"]) for c in cells) / len(cells)
    worst = max(cells, key=lambda c: abs(c["error"]))

    out = ["# `braid plan` against measurement", "",
           f"Command: `{command}`; configs/fortunes_char_transformer.yaml, every rank a node "
           "of its own on `launch/braid-slowlink` (one medium shared by all ranks, planned "
           "with `--link shared`).", "",
           "| delay | rate | method | class | predicted ms/step | measured ms/step | error |",
           "|---|---|---|---|---:|---:|---:|"]
    for c in cells:
        out.append(f"| {c['delay']} | {c['rate']} | {c['method']} | {c['class']} | "
                   f"{c['predicted_ms']:.1f} | {c['measured_ms']:.1f} | {100 * c['error']:+.1f}% |")
    out += ["", f"Mean absolute percentage error: **{100 * mape:.1f}%** over {len(cells)} cells "
            f"(goal: at most 10%); worst cell: {worst['method']} at {worst['rate']}, delay "
            f"{worst['delay']}: {100 * worst['error']:+.1f}% (goal: none beyond 25%).", ""]
    for s in skipped:
        out.append(f"- delay {s['delay']}: not measured: {s['skipped']}")
    out += ["", "## The planner's first choice per cell and quality class", "",
            "Within each class (exact: dense sync; compressed: sync with a compressor; local: "
            "local-update methods) the planner's pick is the lowest predicted step; it is "
            "compared with the lowest measured step of the same class (goal: within 10%).", "",
            "| delay | rate | class | planner's pick | its measured ms | best measured | "
            "ms | pick / best |", "|---|---|---|---|---:|---|---:|---:|"]
    groups = defaultdict(list)
    for c in cells:
        groups[(c["delay"], c["rate"], c["class"])].append(c)
    within = 0
    for (delay, rate, cls), group in groups.items():
        pick = min(group, key=lambda c: c["predicted_ms"])
        best = min(group, key=lambda c: c["measured_ms"])
        ratio = pick["measured_ms"] / best["measured_ms"]
        within += ratio <= 1.10
        out.append(f"| {delay} | {rate} | {cls} | {pick['method']} | {pick['measured_ms']:.1f} | "
                   f"{best['method']} | {best['measured_ms']:.1f} | {ratio:.2f} |")
    out += ["", f"The pick is within 10% of the best measured in {within} of {len(groups)} "
            "groups.", ""]
    open(md_path, "w").write("\n".join(out))

    fig, ax = plt.subplots(figsize=(6, 6))
    for method in sorted({c["method"] for c in cells}):
        mine = [c for c in cells if c["method"] == method]
        ax.scatter([c["measured_ms"] for c in mine], [c["predicted_ms"] for c in mine],
                   label=method, s=24)
    lo = min(min(c["measured_ms"], c["predicted_ms"]) for c in cells) * 0.8
    hi = max(max(c["measured_ms"], c["predicted_ms"]) for c in cells) * 1.25
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="predicted = measured")
    ax.fill_between([lo, hi], [lo * 0.75, hi * 0.75], [lo * 1.25, hi * 1.25], color="grey",
                    alpha=0.15, label="±25%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured ms per step")
    ax.set_ylabel("predicted ms per step (braid plan)")
    ax.set_title(f"braid plan vs measurement, MAPE {100 * mape:.1f}%")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)


if __name__ == "__main__":
    main()
