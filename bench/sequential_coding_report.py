#!/usr/bin/python3
"""bench/sequential_coding.sh's report: step time and training time to a target test accuracy per
run, with ratios against gradient coding and allreduce on the same trace at the same momentum; a
markdown table with each run's configuration, a verdict, and a plot of test accuracy against
training time.

Usage: sequential_coding_report.py WORK NP STEPS TARGET TRACE COMMAND OUT_MD OUT_PNG
                                   TRACE_B,TRACE_W,TRACE_LAMBDA,START_P
       sequential_coding_report.py --delay FACTOR RUN_DIR   (prints FACTOR x its step ms)

Times exclude the evaluations: metrics.jsonl's time_s counts them (about 0.6 s each on 2 cores,
as long as 10-20 steps), and so does summary.json's samples_per_s. The script logs a training
line at every evaluation step, so each evaluation's time is its line's time_s minus the training
line's just before it.
"""
import datetime
import json
import math
import os
import re
import sys

import yaml

METHODS = ["allreduce", "gradient_coding", "sr_sgc", "m_sgc"]
RUNS = ["allreduce", "m_sgc_momentum0"] + [f"{m}_trace{s}" for s in ("", "_momentum0")
                                          for m in METHODS]
SEQUENTIAL = ("sr_sgc", "m_sgc")


def timeline(run_dir):
    """(evaluations as (step, training seconds so far, test accuracy), training seconds, steps)."""
    evals, eval_seconds, train = [], 0.0, None  # train: the latest training line
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        r = json.loads(line)
        if "test_accuracy" not in r:
            train = r
            continue
        if train is None or train["step"] != r["step"]:
            sys.exit(f"{run_dir}: evaluation at step {r['step']} without a training line there "
                     "(train.log_every must divide train.eval_every)")
        evals.append((r["step"], train["time_s"] - eval_seconds, r["test_accuracy"]))
        eval_seconds += r["time_s"] - train["time_s"]
    # Every run ends with an evaluation right after its last training line: the training seconds
    # before it are the whole run's.
    return evals, evals[-1][1], evals[-1][0]


def fallbacks(log):
    """Rank 0's last 'the step waited for every rank (K of M steps so far)' line as (K, M, step),
    or None without one. The line comes at most once per 100 steps: K counts the fallbacks up to
    that step only."""
    last = None
    for line in open(log, errors="replace"):
        m = re.search(r"step (\d+): .*waited for every rank \((\d+) of (\d+) steps so far\)", line)
        if m:
            last = (int(m.group(2)), int(m.group(3)), int(m.group(1)))
    return last


def timed_step_ms(run_dir, skip=50):
    """Milliseconds per step between the training lines at step `skip` and the last one: no
    start-up, warm-up or evaluation (the timing runs evaluate only after their last line); and
    rank 0's mean comm_ms (time in the exchange, waiting included) over the same lines."""
    lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    train = [r for r in lines if "test_accuracy" not in r]
    first = next(r for r in train if r["step"] >= skip)
    later = [r["comm_ms"] for r in train if r["step"] > first["step"]]
    return (1e3 * (train[-1]["time_s"] - first["time_s"]) / (train[-1]["step"] - first["step"]),
            sum(later) / len(later))


def timing_pairs(work, prefix="timing"):
    """The paired step-time runs named <prefix><repeat>_<method>: [(repeat, gradient coding ms,
    m_sgc ms, m_sgc's fallbacks, rank 0's received MB per step for gradient coding, for m_sgc,
    rank 0's comm ms for gradient coding, for m_sgc)]."""
    def received(name):
        summary = json.load(open(os.path.join(work, name, "summary.json")))
        return summary["bytes_recv"] / 1e6 / summary["steps"]
    pairs, r = [], 1
    while all(os.path.exists(os.path.join(work, f"{prefix}{r}_{m}", "summary.json"))
              for m in ("gradient_coding", "m_sgc")):
        skip = 50 if prefix == "timing" else 25
        g, gc_comm = timed_step_ms(os.path.join(work, f"{prefix}{r}_gradient_coding"), skip)
        m, m_comm = timed_step_ms(os.path.join(work, f"{prefix}{r}_m_sgc"), skip)
        pairs.append((r, g, m, fallbacks(os.path.join(work, f"{prefix}{r}_m_sgc.log")),
                      received(f"{prefix}{r}_gradient_coding"), received(f"{prefix}{r}_m_sgc"),
                      gc_comm, m_comm))
        r += 1
    return pairs


def median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def describe(config, np):
    """A run's configuration in words, its load (fraction of the global batch each rank computes
    per step) and its staleness T (steps between a gradient's parameters and its update)."""
    sync, coding, opt = config["sync"]["strategy"], config["coding"], config["optimizer"]
    n = np
    if sync == "allreduce":
        what, load, stale = "allreduce", 1 / n, 0
    elif sync == "gradient_coding":
        s = coding["stragglers"]
        what, load, stale = f"gradient_coding {coding['scheme']} stragglers={s}", (s + 1) / n, 0
    else:
        b, w, lam = coding["burst"], coding["window"], coding["lambda"]
        what = (f"sequential_coding {coding['scheme']} burst={b} window={w} lambda={lam} "
                f"mu={coding['mu']:g}")
        if coding["scheme"] == "sr_sgc":
            s = math.ceil(b * lam / (w - 1 + b))
            what += f" (inner s={s})"
            load, stale = (s + 1) / n, b
        else:
            load = (lam + 1) * (w - 1 + b) / (n * (b + (w - 1) * (lam + 1)))
            stale = w - 2 + b
    optimizer = f"{opt['name']} lr={opt['lr']:g} momentum={opt['momentum']:g}"
    trace = "yes" if config.get("inject", {}).get("trace") else "no"
    return what, optimizer, trace, load, stale


def pct(ratio):
    return f"{abs(100 * (1 - ratio)):.0f}% {'lower' if ratio <= 1 else 'higher'}"


def fmt_ratio(value, base):
    return f"{value / base:.2f}x" if value is not None and base else "-"


def hit_text(d):
    return (f"{d['hit'][1]:.1f} s ({d['hit'][0]} steps)" if d["hit"]
            else f"not reached (final accuracy {d['accuracy']:.3f})")


def big_label(work):
    """How the compute-bound pairs were run, from their config."""
    path = os.path.join(work, "timingbig1_m_sgc", "config.yaml")
    if not os.path.exists(path):
        return "compute-bound"
    batch = re.search(r"batch_size: (\d+)", open(path).read())
    return f"batch {batch.group(1)} per rank (compute-bound)" if batch else "compute-bound"


def paired_verdict(pairs, kind, where):
    """The 15% expectation decided on paired runs: medians, the per-pair ratios, met or not."""
    ratio = median([m / g for _, g, m, *_ in pairs])
    g_ms, m_ms = median([g for _, g, *_ in pairs]), median([m for _, _, m, *_ in pairs])
    return (f"- **Step time, paired runs{kind}**: m_sgc {m_ms:.1f} ms against gradient "
            f"coding's {g_ms:.1f} ms (medians); median per-pair ratio {ratio:.2f}x ({pct(ratio)}; "
            f"pairs {', '.join(f'{m / g:.2f}x' for _, g, m, *_ in pairs)}): the expected >= 15% "
            f"reduction is **{'met' if ratio <= 0.85 else 'missed'}**{where}")


def verdict(data, target, pairs, big=(), big_kind=""):
    """The honest reading: the 15% step-time expectation against gradient coding at equal
    tolerance, then time to the target at each momentum, then what staleness and the lower
    momentum each cost in steps."""
    lines = []
    if pairs:
        lines.append(paired_verdict(pairs, "", "."))
        rg, rm = median([p[4] for p in pairs]), median([p[5] for p in pairs])
        fb = [p[3] for p in pairs if p[3]]
        cg, cm = median([p[6] for p in pairs]), median([p[7] for p in pairs])
        lines.append(f"  m_sgc computes 2/3 of gradient coding's samples per rank, but rank 0 "
                     f"receives {rm:.2f} MB per step against {rg:.2f} MB ({rm / rg:.1f}x: a "
                     "result per minitask slot) and decodes them"
                     + (f", {sum(k for k, _, _ in fb)} of {sum(m for _, m, _ in fb)} logged "
                        "steps fell back to waiting for every rank" if fb else "")
                     + f", and rank 0 spends {cm:.1f} ms per step in the exchange (waiting "
                     f"included) against {cg:.1f} ms: on this small model the extra bytes cost "
                     f"{cm - cg:.1f} ms per step of what the smaller load saves in compute.")
    if big:
        lines.append(paired_verdict(big, f", {big_kind}", " where compute dominates the exchange."))
    lines.append("- Step times of the single training runs (each met the machine's load at a "
                 "different time):")
    for suffix, label in (("", "momentum 0.9"), ("_momentum0", "momentum 0")):
        g = data.get(f"gradient_coding_trace{suffix}")
        if g is None:
            continue
        for scheme in ("m_sgc", "sr_sgc"):
            m = data.get(f"{scheme}_trace{suffix}")
            if m is None:
                continue
            step = m["step_ms"] / g["step_ms"]
            expected = (f" ({'within' if step <= 0.85 else 'short of'} the 15%)"
                        if scheme == "m_sgc" else "")
            note = (" (sr_sgc computes gradient coding's load, 1/2 of the global batch per "
                    "rank: it cannot be faster)" if scheme == "sr_sgc" else "")
            lines.append(f"  - {label}: {scheme} step time {m['step_ms']:.1f} ms against gradient "
                         f"coding's {g['step_ms']:.1f} ms: {step:.2f}x ({pct(step)}){expected}"
                         f"{note}.")
    quiet, traced = data.get("m_sgc_momentum0"), data.get("m_sgc_trace_momentum0")
    if quiet and traced:
        same = quiet["hit"] and traced["hit"] and quiet["hit"][0] == traced["hit"][0]
        lines.append(f"- m_sgc at momentum 0 without the trace: {quiet['step_ms']:.1f} ms per step "
                     f"against {traced['step_ms']:.1f} ms on it"
                     + (" (slower without stragglers: the machine's load, not the method)"
                        if quiet["step_ms"] > traced["step_ms"] else "")
                     + f"; final test accuracy {quiet['accuracy']:.4f} against "
                     f"{traced['accuracy']:.4f}, "
                     + ("the same steps to the target" if same else "different steps to the target")
                     + ": its updates are the same delayed SGD whoever straggles.")
    lines.append("")
    for suffix, label in (("", "momentum 0.9"), ("_momentum0", "momentum 0")):
        g = data.get(f"gradient_coding_trace{suffix}")
        for scheme in ("m_sgc", "sr_sgc"):
            m = data.get(f"{scheme}_trace{suffix}")
            if m is None or g is None:
                continue
            head = (f"- {label}: {scheme} time to {target:.2f}: {hit_text(m)} against gradient "
                    f"coding's {hit_text(g)}")
            if m["hit"] is None:
                lines.append(f"{head}: **the staleness eats the whole gain**.")
            elif g["hit"] is None:
                lines.append(f"{head}: {scheme} reaches it, gradient coding does not.")
            else:
                time, steps = m["hit"][1] / g["hit"][1], m["hit"][0] / g["hit"][0]
                if time >= 1:
                    how = "**the staleness eats the gain**"
                elif steps > 1:
                    how = "**the staleness eats part of the gain**"
                else:
                    how = "**the staleness costs no steps** at this evaluation interval"
                lines.append(f"{head}: {time:.2f}x the time, {steps:.2f}x the steps: {how}.")
    # Best against best: each method at the momentum that suits it.
    best = {}
    for method in METHODS:
        hits = [(data[n]["hit"][1], n) for n in (f"{method}_trace", f"{method}_trace_momentum0")
                if n in data and data[n]["hit"]]
        if hits:
            best[method] = min(hits)
    if "m_sgc" in best and "gradient_coding" in best:
        (tm, nm), (tg, ng) = best["m_sgc"], best["gradient_coding"]
        lines.append(f"- Each at its better momentum: {nm} reaches {target:.2f} in {tm:.1f} s, "
                     f"{ng} in {tg:.1f} s: {tm / tg:.2f}x "
                     f"({'m_sgc sooner' if tm < tg else 'gradient coding sooner'}).")
    if best:
        fastest = min(best.values())
        lines.append(f"- Soonest to {target:.2f} on the trace: {fastest[1]} ({fastest[0]:.1f} s).")
    lines.append("")
    # Steps to the target: staleness against momentum.
    ar, ar0 = data.get("allreduce_trace"), data.get("allreduce_trace_momentum0")
    if ar and ar0 and ar["hit"] and ar0["hit"]:
        lines.append(f"- Cost of the lower momentum, without staleness: allreduce at momentum 0 "
                     f"needs {ar0['hit'][0]} steps to {target:.2f} against {ar['hit'][0]} at 0.9 "
                     f"({ar0['hit'][0] / ar['hit'][0]:.2f}x).")
    for scheme in SEQUENTIAL:
        for suffix, ref, label in (("_momentum0", ar0, "momentum 0"), ("", ar, "momentum 0.9")):
            m = data.get(f"{scheme}_trace{suffix}")
            if m is None or ref is None or ref["hit"] is None:
                continue
            t = m["stale"]
            if m["hit"]:
                lines.append(f"- Cost of staleness T={t} at {label}: {scheme} needs {m['hit'][0]} "
                             f"steps against allreduce's {ref['hit'][0]} "
                             f"({m['hit'][0] / ref['hit'][0]:.2f}x).")
            else:
                lines.append(f"- Cost of staleness T={t} at {label}: {scheme} does not reach "
                             f"{target:.2f} in its steps (final accuracy {m['accuracy']:.3f}; "
                             f"allreduce: {ref['hit'][0]} steps).")
    return lines


def plot(data, target, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), width_ratios=[2, 1])
    colors = {m: f"C{i}" for i, m in enumerate(METHODS)}
    for n, d in data.items():
        method = next(m for m in METHODS if n.startswith(m))
        style = ":" if "_trace" not in n else ("--" if n.endswith("momentum0") else "-")
        left.plot([t for _, t, _ in d["evals"]], [a for _, _, a in d["evals"]], marker="o",
                  markersize=3, color=colors[method], linestyle=style, label=n)
    left.axhline(target, color="grey", linestyle="-.", linewidth=1, label=f"target {target:.2f}")
    left.set_xlabel("training time, evaluations excluded (s)")
    left.set_ylabel("test accuracy")
    left.set_title("on the trace: solid momentum 0.9, dashed momentum 0; dotted: no trace",
                   fontsize=9)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    names = list(data)
    right.bar(range(len(names)), [data[n]["step_ms"] for n in names],
              color=[colors[next(m for m in METHODS if n.startswith(m))] for n in names])
    right.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    right.set_ylabel("step time, evaluations excluded (ms)")
    right.set_title("single runs (the paired timing is in the .md)", fontsize=9)
    right.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out_png)


def main():
    if sys.argv[1] == "--delay":
        _, seconds, steps = timeline(sys.argv[3])
        print(round(float(sys.argv[2]) * 1e3 * seconds / steps))
        return
    work, np, steps, target, trace, command, out_md, out_png, trace_model = sys.argv[1:10]
    np, steps, target = int(np), int(steps), float(target)
    tb, tw, tl, start_p = trace_model.split(",")
    data = {}
    for n in RUNS:
        if not os.path.exists(os.path.join(work, n, "summary.json")):
            continue  # not in RUNS, or failed: its log says why
        evals, seconds, done = timeline(os.path.join(work, n))
        summary = json.load(open(os.path.join(work, n, "summary.json")))
        config = yaml.safe_load(open(os.path.join(work, n, "config.yaml")))
        what, optimizer, traced, load, stale = describe(config, np)
        data[n] = dict(evals=evals, step_ms=1e3 * seconds / done, accuracy=summary["test_accuracy"],
                       hit=next((e for e in evals if e[2] >= target), None), what=what,
                       optimizer=optimizer, traced=traced, load=load, stale=stale,
                       seconds=seconds, fallbacks=fallbacks(os.path.join(work, f"{n}.log"))
                       if config["sync"]["strategy"] == "sequential_coding" else None,
                       wall=open(os.path.join(work, f"{n}.seconds")).read().strip())
    delays = [line.strip().split(",") for line in open(trace)][1:]
    delay_ms = float(delays[0][2]) if delays else 0.0
    eval_every = next(iter(data.values()))["evals"][0][0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown")
    cores = os.cpu_count()
    load = open("/proc/loadavg").read().split()[:3]
    base = data.get("allreduce")
    out = [f"Fashion-MNIST cnn, np={np}, {steps} steps, batch 60 per rank (global {60 * np}), "
           f"SGD lr 0.05 (the config's), a test evaluation every {eval_every} steps.",
           "",
           f"Trace: bench/traces/bursty_trace.py --burst {tb} --window {tw} --lambda {tl} "
           f"--start-probability {start_p} --exclude-ranks 0: {len(delays)} delayed (step, rank) "
           f"events in {steps} steps ({100 * len(delays) / steps:.0f}%), any two at least {tw} "
           f"steps apart, ranks 1..{np - 1} only (rank 0 decodes), {delay_ms:g} ms each"
           + (f" ({delay_ms / base['step_ms']:.2f}x the no-trace allreduce step of "
              f"{base['step_ms']:.1f} ms)" if base else "") + ". The delay is a sleep after the "
           "step's compute: the delayed rank misses every round until it wakes, so one event "
           "becomes a burst of about 2 missed rounds (up to ~"
           f"{min(100, 200 * len(delays) // steps)}% of rounds with a straggler), which the "
           "sequential codes' model burst=2 window=3 lambda=1 allows.",
           "",
           f"Command: {command}",
           "",
           f"Machine: {cores} cores ({cpu}), {np} ranks"
           f"{' oversubscribed: the ranks time-share the cores' if np > cores else ''}; the "
           "injected delay uses no CPU, so while one rank sleeps the others get more of the "
           f"cores. Load averages (1, 5, 15 minutes) when the report was written: "
           f"{', '.join(load)} (this bench's ranks make about {np}; more: other work shared "
           f"the machine). {datetime.date.today().isoformat()}.",
           "",
           "Times exclude the periodic evaluations' own time. Steps to the target are the first "
           "evaluation at or above it. An evaluation is collective: there a coded run's root "
           "waits for a straggler it would otherwise have left behind, at most one delay per "
           f"evaluation ({delay_ms:g} ms / {eval_every} steps = {delay_ms / eval_every:.1f} ms "
           "per step). Ratios compare with gradient coding and allreduce on the trace at the "
           "same momentum.",
           "",
           f"| run | step ms | vs gradient coding | vs allreduce (trace) | final test accuracy "
           f"| steps to {target:.2f} | time to {target:.2f} (s) | vs gradient coding "
           f"| vs allreduce (trace) | wall s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d in data.items():
        suffix = "_momentum0" if n.endswith("_momentum0") else ""
        g, a = data.get(f"gradient_coding_trace{suffix}"), data.get(f"allreduce_trace{suffix}")
        t = d["hit"][1] if d["hit"] else None
        gt, at = (x["hit"][1] if x and x["hit"] else None for x in (g, a))
        out.append(f"| {n} | {d['step_ms']:.1f} | {fmt_ratio(d['step_ms'], g and g['step_ms'])} "
                   f"| {fmt_ratio(d['step_ms'], a and a['step_ms'])} | {d['accuracy']:.4f} "
                   f"| {d['hit'][0] if d['hit'] else 'not reached'} "
                   f"| {f'{t:.1f}' if t is not None else '-'} | {fmt_ratio(t, gt)} "
                   f"| {fmt_ratio(t, at)} | {d['wall']} |")
    out += ["", "Configuration of each row (every row: configs/fashion_mnist_cnn.yaml with "
            f"train.max_steps={steps} data.batch_size=60 train.eval_every={eval_every} "
            "runtime.ranks_per_node=1; load: the fraction of the global batch each rank computes "
            "per step; T: steps between the parameters a gradient was computed at and its "
            "update):", "",
            "| run | strategy | optimizer | trace | load | T "
            "| fallbacks to waiting for every rank |",
            "|---|---|---|---|---:|---:|---|"]
    for n, d in data.items():
        fb = "-"
        if d["fallbacks"]:
            k, m, at_step = d["fallbacks"]
            fb = f"{k} of {m} steps (as of step {at_step}, rank 0's last such line)"
        elif d["what"].startswith("sequential"):
            fb = "none logged"
        out.append(f"| {n} | {d['what']} | {d['optimizer']} | {d['traced']} | {d['load']:.3f} "
                   f"| {d['stale']} | {fb} |")
    out += ["", "Rank 0 logs a fallback line at most once per 100 steps, with the count so far: "
            "fallbacks after the last line are not counted. A fallback: when the grace of "
            "(1 + mu) x the fastest arrival has passed, the late ranks would break the "
            "(burst, window, lambda) model, so the round waits for every rank (the update is "
            "the same; only time is lost)."]
    quiet = data.get("m_sgc_momentum0")
    if quiet and quiet["fallbacks"]:
        k, m, _ = quiet["fallbacks"]
        out.append(f"\nWithout the trace m_sgc fell back on {k} of {m} steps: those come from "
                   f"{np} ranks time-sharing {cores} cores (two ranks later than the grace break "
                   "lambda=1), not from stragglers.")
    pairs = timing_pairs(work)
    big = timing_pairs(work, "timingbig")
    for kind, found, skip in (("batch 60 per rank", pairs, 50), (big_label(work), big, 25)):
        if not found:
            continue
        out += ["", f"Paired step times, {kind}: gradient_coding_trace and m_sgc_trace "
                "configurations at momentum 0 (momentum does not change the work), on the same "
                "trace, without evaluations, one after the other in ABBA order; ms per step from "
                f"the training line at step {skip} to the last:", "",
                "| pair | gradient coding ms | m_sgc ms | m_sgc / gradient coding "
                "| m_sgc fallbacks | rank 0 receives per step: gradient coding, m_sgc (MB) "
                "| rank 0 comm ms: gradient coding, m_sgc |",
                "|---|---:|---:|---:|---|---|---|"]
        for r, g, m, fb, rg, rm, cg, cm in found:
            out.append(f"| {r} | {g:.1f} | {m:.1f} | {m / g:.2f}x | "
                       f"{f'{fb[0]} of {fb[1]} steps' if fb else 'none logged'} "
                       f"| {rg:.2f}, {rm:.2f} | {cg:.1f}, {cm:.1f} |")
        out.append(f"| median | {median([g for _, g, *_ in found]):.1f} "
                   f"| {median([m for _, _, m, *_ in found]):.1f} "
                   f"| {median([m / g for _, g, m, *_ in found]):.2f}x | | | |")
    out += ["", "Reading:", ""]
    out += verdict(data, target, pairs, big, big_label(work))
    open(out_md, "w").write("\n".join(out) + "\n")
    print("\n".join(out))
    plot(data, target, out_png)


if __name__ == "__main__":
    main()
