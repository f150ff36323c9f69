"""bench/method_matrix.sh's report: time to target, loss after a budget, bytes, utilisation.

Usage: method_matrix_report.py WORK PLAN_WORK OUT_PREFIX COMMAND
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHODS = ["sync", "sync+powersgd", "sync+topk", "local_sgd", "diloco", "streaming_diloco", "co2"]
# The planner's row for each method (strategy, compression, algorithm).
PLAN_ROW = {
    "sync": ("allreduce", "none", "ring"), "sync+powersgd": ("allreduce", "powersgd", "ring"),
    "sync+topk": ("allreduce", "topk", "auto"), "local_sgd": ("local_sgd", "none", "ring"),
    "diloco": ("diloco", "none", "ring"), "streaming_diloco": ("streaming_diloco", "none", "auto"),
    "co2": ("co2", "none", "ring")}


def jsonl(path):
    return [json.loads(line) for line in open(path) if line.startswith("{")]


def curve(work, method):
    evals = [r for r in jsonl(f"{work}/{method}/metrics.jsonl") if "test_loss" in r]
    return [(r["step"], r["test_loss"]) for r in evals]


def main():
    work, plan_work, prefix, command = sys.argv[1:5]
    cells = [c for c in jsonl(f"{plan_work}/cells.jsonl") if c.get("delay") == "0"]
    rates = list(dict.fromkeys(c["rate"] for c in cells))
    step_ms = {(c["rate"], c["method"]): c["measured_ms"] for c in cells}
    compute_ms = {}
    for rate in rates:
        for m in METHODS:
            measured = jsonl(f"{plan_work}/0-{rate}-{m}.measured")[-1]
            compute_ms[(rate, m)] = measured["compute_ms"]
    curves = {m: curve(work, m) for m in METHODS}
    summaries = {m: json.load(open(f"{work}/{m}/summary.json")) for m in METHODS}
    target = curves["sync"][-1][1] + 0.1
    sync_steps = curves["sync"][-1][0]
    budget_s = sync_steps * step_ms[(rates[0], "sync")] / 1e3

    def steps_to_target(m):
        return next((s for s, loss in curves[m] if loss <= target), None)

    def loss_within(m, steps):
        done = [loss for s, loss in curves[m] if s <= steps]
        return (done[-1] if done else None), steps > curves[m][-1][0]

    picks = {}
    for rate in rates:
        rows = jsonl(f"{plan_work}/0-{rate}-sync.plan")
        def predicted(m):
            want = PLAN_ROW[m]
            return next(r["step_ms"] for r in rows
                        if (r["strategy"], r["compression"], r["algorithm"]) == want)
        picks[rate] = min(METHODS, key=predicted)

    out = ["# Method x bandwidth matrix", "", f"Command: `{command}`.", "",
           f"configs/fortunes_char_transformer.yaml, np=4 on 2 cores, every rank a node of its own; "
           f"target: sync's final test loss + 0.1 = {target:.3f} nats (sync at {sync_steps} steps on "
           f"the unlimited link); budget: sync's wall-clock for those steps on the unlimited link, "
           f"{budget_s:.0f} s. Loss against steps comes from one run per method on the unlimited "
           "link; time per step from bench/plan.sh's measurement at each rate (evaluation "
           "excluded). 100gbit stands for unlimited (TCP on the loopback, unshaped). * marks "
           "`braid plan`'s first choice among these methods at the rate (by predicted step "
           "time: it does not know steps to target).", "",
           "## Time to target (s)", "", "| method | steps to target | " +
           " | ".join(rates) + " |", "|---|---:|" + "---:|" * len(rates)]
    matrix = []
    for m in METHODS:
        n = steps_to_target(m)
        times = [n * step_ms[(r, m)] / 1e3 if n else math.nan for r in rates]
        matrix.append(times)
        cells_text = [("not reached" if math.isnan(t) else f"{t:.0f}") + ("*" if picks[r] == m else "")
                      for t, r in zip(times, rates)]
        out.append(f"| {m} | {n if n else 'not reached'} | " + " | ".join(cells_text) + " |")
    out += ["", "## Test loss after the budget", "", "| method | " + " | ".join(rates) + " |",
            "|---|" + "---:|" * len(rates)]
    for m in METHODS:
        row = []
        for r in rates:
            steps = int(budget_s * 1e3 / step_ms[(r, m)])
            loss, beyond = loss_within(m, steps)
            row.append(f"no evaluation yet ({steps} steps)" if loss is None else
                       f"{loss:.3f}{'+' if beyond else ''} ({steps} steps)")
        out.append(f"| {m} | " + " | ".join(row) + " |")
    out += ["", "`+`: the budget allows more steps than the method's run has; its last loss is shown.",
            "", "## Bytes and utilisation", "",
            "Utilisation: compute / step time, where compute is the step less the communication "
            "rank 0 waited for: a background exchange that slows compute itself (co2 at 20 Mbit) "
            "still counts as compute.", "", "| method | MB sent per rank per step | " +
            " | ".join(f"utilisation {r}" for r in rates) + " |",
            "|---|---:|" + "---:|" * len(rates)]
    for m in METHODS:
        s = summaries[m]
        per_step = s["bytes_sent"] / s["steps"] / 1e6
        util = [compute_ms[(r, m)] / step_ms[(r, m)] for r in rates]
        out.append(f"| {m} | {per_step:.3f} | " + " | ".join(f"{u:.2f}" for u in util) + " |")
    open(prefix + ".md", "w").write("\n".join(out) + "\n")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    finite = [t for row in matrix for t in row if not math.isnan(t)]
    image = ax.imshow([[math.log10(t) if not math.isnan(t) else math.nan for t in row] for row in matrix],
                      cmap="viridis_r", aspect="auto",
                      vmin=math.log10(min(finite)), vmax=math.log10(max(finite)))
    for i, m in enumerate(METHODS):
        for j, r in enumerate(rates):
            t = matrix[i][j]
            ax.text(j, i, "not reached" if math.isnan(t) else f"{t:.0f}", ha="center",
                    va="center", color="black" if math.isnan(t) else "white", fontsize=8)
            if picks[r] == m:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(len(rates)), rates)
    ax.set_yticks(range(len(METHODS)), METHODS)
    ax.set_title("time to target loss (s); red box: braid plan's pick")
    fig.colorbar(image, label="log10 seconds")
    fig.tight_layout()
    fig.savefig(prefix + "_time.png", dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    rate_bits = {"100gbit": 1e11, "1gbit": 1e9, "100mbit": 1e8, "20mbit": 2e7}
    xs = [rate_bits.get(r, math.nan) for r in rates]
    for m in METHODS:
        ax.plot(xs, [compute_ms[(r, m)] / step_ms[(r, m)] for r in rates], "o-", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("link rate (bit/s; 1e11: unshaped loopback)")
    ax.set_ylabel("compute utilisation (compute / step time)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(prefix + "_utilisation.png", dpi=120)


if __name__ == "__main__":
    main()
