#!/usr/bin/env python3
"""bench/robust.sh's report: accuracy tables and heatmaps per f, and the overhead table.

Usage: robust_report.py WORK NP EPOCHS COMMAND OUT_MD OUT_PNG
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RULES = ["mean", "median", "trimmed_mean", "krum", "multi_krum", "centered_clip", "flag"]
ATTACKS = ["none", "sign_flip", "scale", "alie", "ipm", "random", "drop", "nan"]
PAPER_ATTACKS = ["sign_flip", "scale", "alie"]


def accuracy(work, name):
    path = os.path.join(work, name, "summary.json")
    if not os.path.exists(path):
        return None  # the run failed: its log says why
    return json.load(open(path)).get("test_accuracy")


def grid(work, f):
    out = {}
    for rule in RULES:
        for attack in ATTACKS:
            name = "clean_mean" if (rule, attack) == ("mean", "none") else f"f{f}_{attack}_{rule}"
            out[rule, attack] = accuracy(work, name)
    return out


def cell(value):
    return "failed" if value is None else f"{100 * value:.1f}"


def accuracy_table(acc, clean, f, lines):
    lines.append(f"\n### f = {f} bad ranks\n")
    lines.append("| rule | " + " | ".join(ATTACKS) + " | worst of sign_flip, scale, alie |")
    lines.append("|---|" + "---:|" * (len(ATTACKS) + 1))
    for rule in RULES:
        worst = [acc[rule, a] or 0 for a in PAPER_ATTACKS]
        lines.append(f"| {rule} | " + " | ".join(cell(acc[rule, a]) for a in ATTACKS) +
                     f" | {cell(min(worst))} |")
    best = max(RULES[1:], key=lambda r: min(acc[r, a] or 0 for a in PAPER_ATTACKS))
    gap = 100 * (clean - min(acc[best, a] or 0 for a in PAPER_ATTACKS))
    lines.append(f"\nBest rule over sign_flip, scale and alie: **{best}**, its worst case "
                 f"{gap:.1f} points below clean mean ({100 * clean:.1f}).")
    flag_worst = min(acc["flag", a] or 0 for a in PAPER_ATTACKS)
    best_standard = max(RULES[1:-1], key=lambda r: min(acc[r, a] or 0 for a in PAPER_ATTACKS))
    standard_worst = min(acc[best_standard, a] or 0 for a in PAPER_ATTACKS)
    lines.append(f"flag's worst case {100 * flag_worst:.1f} against the best standard rule's "
                 f"({best_standard}) {100 * standard_worst:.1f}.")


def overhead_table(work, lines):
    path = os.path.join(work, "overhead.jsonl")
    rows = [json.loads(line) for line in open(path) if line.strip()]
    lines.append("\n## Overhead (clean, step time against mean)\n")
    lines.append("| config | rule | step ms | x mean | comm ms |")
    lines.append("|---|---|---:|---:|---:|")
    base = {r["config"]: r["bench"]["step_ms"] for r in rows if r["rule"] == "mean"}
    for r in rows:
        b = r["bench"]
        lines.append(f"| {r['config']} | {r['rule']} | {b['step_ms']:.1f} | "
                     f"{b['step_ms'] / base[r['config']]:.2f}x | {b['comm_ms']:.1f} |")


def heatmaps(grids, out_png):
    fig, axes = plt.subplots(1, len(grids), figsize=(7.5 * len(grids), 4.6),
                             gridspec_kw={"wspace": 0.45})
    for ax, (f, acc) in zip(axes, grids):
        data = [[100 * (acc[r, a] or 0) for a in ATTACKS] for r in RULES]
        im = ax.imshow(data, vmin=0, vmax=100, cmap="viridis")
        ax.set_xticks(range(len(ATTACKS)), ATTACKS, rotation=40, ha="right")
        ax.set_yticks(range(len(RULES)), RULES)
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center",
                        color="white" if v < 50 else "black", fontsize=8)
        ax.set_title(f"test accuracy (%), f = {f} bad ranks")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(out_png, dpi=110, bbox_inches="tight")


def main():
    work, np, epochs, command, out_md, out_png = sys.argv[1:7]
    clean = accuracy(work, "clean_mean")
    lines = [f"# Robust aggregation: Fashion-MNIST cnn, np={np}, {epochs} epochs\n",
             f"Command: `{command}`. Final test accuracy (%) per rule (rows) and attack "
             f"(columns); the bad ranks are the last f ranks; `failed`: the run stopped. "
             f"Clean mean: {100 * clean:.1f}.",
             "\n## Accuracy under attack"]
    grids = [(f, grid(work, f)) for f in (1, 2)]
    for f, acc in grids:
        accuracy_table(acc, clean, f, lines)
    overhead_table(work, lines)
    text = "\n".join(lines) + "\n"
    open(out_md, "w").write(text)
    print(text)
    heatmaps(grids, out_png)


if __name__ == "__main__":
    main()
