#!/usr/bin/env python3
"""The straggler-trace tools of bench/traces: bursty_trace.py's traces keep their model (bursts of
at most B steps, at most LAMBDA distinct stragglers in any W consecutive steps), and a checker of
that model catches a trace that breaks it (negative control); sgc_profile_to_csv.py turns a
profile of the paper's format (rounds of workers' start and finish times) into each rank's delay
over the round's median, and refuses a profile that is not one.

Usage: trace_tools_test.py SOURCE_DIR
"""
import os
import pickle
import subprocess
import sys
import tempfile


def run(script, *args):
    return subprocess.run([sys.executable, script, *map(str, args)], capture_output=True,
                          text=True)


def read_trace(text):
    lines = text.strip().splitlines()
    assert lines[0] == "step,rank,delay_ms", lines[0]
    return [(int(s), int(r), float(d)) for s, r, d in (l.split(",") for l in lines[1:])]


def model_violations(trace, burst, window, limit):
    """Bursts longer than `burst`, and windows with more than `limit` distinct stragglers."""
    out = []
    by_rank = {}
    for step, rank, _ in trace:
        by_rank.setdefault(rank, set()).add(step)
    for rank, steps in by_rank.items():
        run_length = 0
        for step in range(max(steps) + 2):
            run_length = run_length + 1 if step in steps else 0
            if run_length > burst:
                out.append(f"rank {rank} straggles {run_length} steps in a row at {step}")
    last = max((s for s, _, _ in trace), default=0)
    for start in range(last + 1):
        ranks = {r for s, r, _ in trace if start <= s < start + window}
        if len(ranks) > limit:
            out.append(f"steps {start}..{start + window - 1}: {len(ranks)} stragglers")
    return out


def main():
    src = sys.argv[1]
    bursty = os.path.join(src, "bench", "traces", "bursty_trace.py")
    convert = os.path.join(src, "bench", "traces", "sgc_profile_to_csv.py")
    failures = []
    for burst, window, limit in [(1, 3, 1), (2, 4, 2), (3, 6, 2)]:
        r = run(bursty, "--ranks", 8, "--steps", 300, "--burst", burst, "--window", window,
                "--lambda", limit, "--delay-ms", 25, "--seed", 3)
        trace = read_trace(r.stdout)
        if len(trace) < 30:
            failures.append(f"B={burst} W={window}: only {len(trace)} delayed steps")
        failures += model_violations(trace, burst, window, limit)
        if any(d != 25 for _, _, d in trace):
            failures.append("a delay other than --delay-ms")
    # Negative control: the checker sees a burst too long and a window too full.
    seen = model_violations([(0, 1, 1), (1, 1, 1), (2, 1, 1), (2, 2, 1)], 2, 2, 1)
    if not any("in a row" in v for v in seen) or not any("stragglers" in v for v in seen):
        failures.append(f"the model checker misses violations: {seen}")
    # --exclude-ranks keeps rank 0 (the decoding root) out, and the model still holds.
    r = run(bursty, "--ranks", 4, "--steps", 300, "--burst", 1, "--window", 5, "--lambda", 1,
            "--delay-ms", 7, "--start-probability", 0.4, "--exclude-ranks", 0, "--seed", 0)
    trace = read_trace(r.stdout)
    if not trace or any(rank == 0 for _, rank, _ in trace):
        failures.append(f"--exclude-ranks 0: {len(trace)} events, rank 0 among them or none")
    failures += model_violations(trace, 1, 5, 1)
    # Same seed, same trace; another seed, another.
    args = ["--ranks", 4, "--steps", 100, "--burst", 2, "--window", 4, "--lambda", 1,
            "--delay-ms", 5]
    if run(bursty, *args, "--seed", 1).stdout != run(bursty, *args, "--seed", 1).stdout:
        failures.append("bursty_trace.py is not deterministic")
    if run(bursty, *args, "--seed", 1).stdout == run(bursty, *args, "--seed", 2).stdout:
        failures.append("the seed changes nothing")

    with tempfile.TemporaryDirectory() as work:
        rounds = [{"results": [{"started": 10.0, "finished": 10.0 + d} for d in durations]}
                  for durations in ([1.0, 1.0, 1.5, 1.0], [2.0, 1.0, 1.0, 1.0005])]
        profile = os.path.join(work, "profile.pkl")
        with open(profile, "wb") as f:
            pickle.dump(rounds, f)
        r = run(convert, profile, "--ranks", 3)
        got = read_trace(r.stdout)
        # Medians over every worker of the round (1.0 and 1.00025 s); rank 3 is not converted.
        expected = [(0, 2, 500.0), (1, 0, 999.75)]
        if [(s, k, round(d, 3)) for s, k, d in got] != expected:
            failures.append(f"converted {got}, expected {expected}")
        r = run(convert, profile, "--ranks", 5)
        if r.returncode == 0 or "fewer than --ranks 5" not in r.stderr:
            failures.append(f"too few workers accepted: {r.stderr}")
        with open(profile, "wb") as f:
            pickle.dump([{"results": [{"started": 1.0}]}], f)
        r = run(convert, profile, "--ranks", 1)
        if r.returncode == 0 or "round 0: not a delay-profile round" not in r.stderr:
            failures.append(f"a malformed profile accepted: {r.stderr}")
    for failure in failures:
        print("FAIL:", failure)
    print("trace tools:", "ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
