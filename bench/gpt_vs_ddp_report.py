#!/usr/bin/python3
"""Table and plot of bench/gpt_vs_ddp.sh: samples/s of braid, PyTorch DDP and independent
processes on the unlimited and the slow link, and PowerSGD (braid's and PyTorch's hook)
samples/s and loss side by side."""
import argparse
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BATCH, RANKS, LAST = 4, 2, 10  # windows per rank and step; ranks; steps the final loss averages


def braid_run(work, name, warmup, ranks=RANKS):
    with open(os.path.join(work, name, "metrics.jsonl")) as f:
        steps = sorted((r for r in map(json.loads, f) if "loss" in r), key=lambda r: r["step"])
    at = {r["step"]: r for r in steps}
    last = steps[-1]["step"]
    seconds = at[last]["time_s"] - at[warmup]["time_s"]
    return {"samples_per_s": (last - warmup) * ranks * BATCH / seconds,
            "losses": [r["loss"] for r in steps]}


def ddp_run(work, name):
    with open(os.path.join(work, name + ".json")) as f:
        return json.load(f)


def final_loss(run):
    return statistics.mean(run["losses"][-LAST:])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work")
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--rate", required=True)
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--png", required=True)
    a = p.parse_args()
    w = a.work
    independent = [braid_run(w, f"independent_{i}", a.warmup, ranks=1) for i in range(2)]
    def repeated(load, name):
        """Run 1's losses, the median samples/s of every repeat."""
        runs = [load(f"{name}_{i}") for i in range(1, a.repeats + 1)]
        return {"losses": runs[0]["losses"], "all": [r["samples_per_s"] for r in runs],
                "samples_per_s": statistics.median(r["samples_per_s"] for r in runs)}

    def braid(name):
        return braid_run(w, name, a.warmup)

    def ddp(name):
        return ddp_run(w, name)

    runs = {
        "braid_unlimited": repeated(braid, "braid_unlimited"),
        "ddp_unlimited": repeated(ddp, "ddp_unlimited"),
        "independent": {"samples_per_s": sum(r["samples_per_s"] for r in independent),
                        "losses": [statistics.mean(x) for x in
                                   zip(*(r["losses"] for r in independent))]},
        "braid_slow": repeated(braid, "braid_slow"),
        "ddp_slow": repeated(ddp, "ddp_slow"),
        "braid_powersgd_slow": braid_run(w, "braid_powersgd_slow", a.warmup),
        "ddp_powersgd_slow": ddp_run(w, "ddp_powersgd_slow"),
    }
    steps = len(runs["braid_slow"]["losses"])
    model = a.model.strip().split(": ", 1)[-1]  # without the temporary path
    sps = {k: r["samples_per_s"] for k, r in runs.items()}
    rows = [
        ("unlimited", "braid, dense allreduce", "braid_unlimited", "ddp_unlimited"),
        ("unlimited", "independent processes (limit)", "independent", "ddp_unlimited"),
        (a.rate, "braid, dense allreduce", "braid_slow", "ddp_slow"),
        (a.rate, "braid powersgd rank 4 + ef, 2 dense steps vs DDP powerSGD_hook rank 4, "
         "start_powerSGD_iter 2",
         "braid_powersgd_slow", "ddp_powersgd_slow"),
    ]
    lines = [
        "# braid vs PyTorch DDP (Gloo), TorchScript GPT",
        "",
        f"Produced by `bench/gpt_vs_ddp.sh` (STEPS={steps} WARMUP={a.warmup} RATE={a.rate}): "
        f"{model}; 2 ranks, batch 4 x 128 tokens per rank, AdamW lr 6e-4, one torch thread "
        "per rank; samples/s over the steps after the warm-up: the dense runs' median over "
        f"{a.repeats} alternating repeats (each in brackets), the others run once; loss: the "
        f"mean over ranks, averaged over the last {LAST} steps.",
        "",
        "| link | braid configuration | braid samples/s | baseline samples/s | ratio | "
        "braid loss | baseline loss |",
        "|---|---|---|---|---|---|---|",
    ]
    def shown(key):
        each = runs[key].get("all")
        return f"{sps[key]:.2f}" + (f" ({', '.join(f'{x:.2f}' for x in each)})" if each else "")

    for link, what, ours, base in rows:
        lines.append(f"| {link} | {what} | {shown(ours)} | {shown(base)} {base} | "
                     f"{sps[ours] / sps[base]:.2f} | {final_loss(runs[ours]):.3f} | "
                     f"{final_loss(runs[base]):.3f} |")
    lines += [
        "",
        f"braid / independent processes on the unlimited link: "
        f"{sps['braid_unlimited'] / sps['independent']:.3f}.",
        f"PowerSGD loss difference (braid - PyTorch hook): "
        f"{final_loss(runs['braid_powersgd_slow']) - final_loss(runs['ddp_powersgd_slow']):+.3f} "
        "nats.",
        "",
        "![samples/s and loss](gpt_vs_ddp.png)",
        "",
    ]
    with open(a.md, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.splitext(a.md)[0] + ".json", "w") as f:
        json.dump(runs, f)  # every run's samples/s and per-step losses, for a later look
    print("\n".join(lines))

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = ["braid\nunlimited", "DDP\nunlimited", "independent\nunlimited",
              f"braid\n{a.rate}", f"DDP\n{a.rate}", f"braid PowerSGD\n{a.rate}",
              f"DDP PowerSGD\n{a.rate}"]
    keys = ["braid_unlimited", "ddp_unlimited", "independent", "braid_slow", "ddp_slow",
            "braid_powersgd_slow", "ddp_powersgd_slow"]
    colours = ["tab:blue", "tab:orange", "tab:gray"] + ["tab:blue", "tab:orange"] * 2
    left.bar(range(len(keys)), [sps[k] for k in keys], color=colours)
    left.set_xticks(range(len(keys)))
    left.set_xticklabels(labels, fontsize=7)
    left.set_ylabel("samples/s (2 ranks)")
    left.set_title("throughput")
    for key, label in [("braid_powersgd_slow", "braid powersgd r4 + ef"),
                       ("ddp_powersgd_slow", "DDP powerSGD_hook r4"),
                       ("braid_slow", "braid dense"), ("ddp_slow", "DDP dense")]:
        right.plot(range(1, len(runs[key]["losses"]) + 1), runs[key]["losses"], label=label)
    right.set_xlabel("step")
    right.set_ylabel("training loss (nats)")
    right.set_title(f"loss on the {a.rate} link")
    right.legend()
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)


if __name__ == "__main__":
    main()
