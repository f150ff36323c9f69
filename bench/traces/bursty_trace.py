#!/usr/bin/env python3
"""A synthetic straggler trace under the bursty model of sequential gradient coding (Krishnan,
Ebrahimi and Khisti, ICLR 2023): stragglers come in bursts of at most B consecutive steps, and any
window of W consecutive steps holds at most LAMBDA distinct stragglers. Writes braid's
inject.trace CSV (step,rank,delay_ms).

Usage: bursty_trace.py --ranks N --steps T --burst B --window W --lambda L --delay-ms D
                       [--start-probability P] [--seed S] [--exclude-ranks R,...] [-o FILE]

Each step, with probability P, one rank that is not straggling (nor excluded) starts a burst of
1..B steps (the length uniform), unless some window of W steps would then hold more than L
distinct stragglers or two bursts of one rank (the model: within a window, each straggler's steps
are one burst of at most B); a straggling rank is delayed D ms at each step of its burst.
Deterministic for a seed.
"""
import argparse
import random
import sys


def stragglers_in_windows_ok(bursts, window, limit, steps):
    """Whether every window of `window` steps holds at most `limit` distinct straggling ranks,
    each in one burst."""
    for start in range(max(1, steps - window + 1)):
        ranks = [r for r, s, n in bursts if s < start + window and s + n > start]
        if len(set(ranks)) > limit or len(ranks) > len(set(ranks)):
            return False
    return True


def generate(ranks, steps, burst, window, limit, probability, seed, exclude=()):
    rng = random.Random(seed)
    bursts = []  # (rank, first step, length)
    for t in range(steps):
        if rng.random() >= probability:
            continue
        # Straggling now or at the step before: a new burst there would lengthen that one.
        busy = {r for r, s, n in bursts if s <= t < s + n + 1}
        free = [r for r in range(ranks) if r not in busy and r not in exclude]
        if not free:
            continue
        candidate = (rng.choice(free), t, rng.randint(1, burst))
        near = [b for b in bursts if b[1] + b[2] > t - window] + [candidate]
        if stragglers_in_windows_ok(near, window, limit, t + candidate[2] + window):
            bursts.append(candidate)
    return bursts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--burst", type=int, required=True, help="B: longest burst, in steps")
    parser.add_argument("--window", type=int, required=True, help="W: window, in steps")
    parser.add_argument("--lambda", dest="limit", type=int, required=True,
                        help="distinct stragglers allowed in a window")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--start-probability", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude-ranks", default="",
                        help="comma-separated ranks never delayed, e.g. 0")
    parser.add_argument("-o", "--output", default="-")
    a = parser.parse_args()
    if min(a.ranks, a.steps, a.burst, a.window) < 1 or a.limit < 0 or a.delay_ms < 0:
        parser.error("ranks, steps, burst and window must be >= 1, lambda and delay >= 0")
    try:
        exclude = {int(r) for r in a.exclude_ranks.split(",") if r.strip()}
    except ValueError:
        parser.error(f"--exclude-ranks: not a comma-separated list of ranks: {a.exclude_ranks}")
    bursts = generate(a.ranks, a.steps, a.burst, a.window, a.limit, a.start_probability, a.seed,
                      exclude)
    lines = sorted((s + k, r) for r, s, n in bursts for k in range(n) if s + k < a.steps)
    out = sys.stdout if a.output == "-" else open(a.output, "w")
    out.write("step,rank,delay_ms\n")
    for step, rank in lines:
        out.write(f"{step},{rank},{a.delay_ms:g}\n")


if __name__ == "__main__":
    main()
