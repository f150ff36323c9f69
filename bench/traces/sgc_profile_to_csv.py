#!/usr/bin/env python3
"""Converts a delay profile recorded by the sequential gradient coding paper's experiments
(Krishnan, Ebrahimi and Khisti, ICLR 2023; repository mamaj/Sequential-Gradient-Coding-2, folder
1_create_delay_profiles: AWS Lambda workers, one pickle per region and load) into braid's
inject.trace CSV (step,rank,delay_ms).

Usage: sgc_profile_to_csv.py PROFILE.pkl --ranks N [--scale X] [--min-ms M] [-o FILE]

A profile is a pickled list of rounds, each a dict whose 'results' list holds one dict per
worker with 'started' and 'finished' (seconds), as the paper's code records them. Round t
becomes step t; worker w < N becomes rank w; its delay is how much longer than the round's
median worker it took, times X (default 1), listed when at least M ms (default 1). Only open
profiles you trust: unpickling runs code.
"""
import argparse
import pickle
import statistics
import sys


def durations(rounds):
    """Per round, each worker's duration in seconds."""
    out = []
    for t, round_ in enumerate(rounds):
        try:
            out.append([float(w["finished"]) - float(w["started"]) for w in round_["results"]])
        except (KeyError, TypeError, ValueError) as e:
            raise SystemExit(f"round {t}: not a delay-profile round ({e!r})")
    return out


def convert(rounds, ranks, scale, min_ms):
    lines = []
    for step, d in enumerate(durations(rounds)):
        if len(d) < ranks:
            raise SystemExit(f"round {step} has {len(d)} workers, fewer than --ranks {ranks}")
        median = statistics.median(d)
        for rank in range(ranks):
            delay = 1000 * scale * max(0.0, d[rank] - median)
            if delay >= min_ms:
                lines.append((step, rank, delay))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--ranks", type=int, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--min-ms", type=float, default=1.0)
    parser.add_argument("-o", "--output", default="-")
    a = parser.parse_args()
    if a.ranks < 1 or a.scale < 0:
        parser.error("--ranks must be >= 1 and --scale >= 0")
    with open(a.profile, "rb") as f:
        rounds = pickle.load(f)
    out = sys.stdout if a.output == "-" else open(a.output, "w")
    out.write("step,rank,delay_ms\n")
    for step, rank, delay in convert(rounds, a.ranks, a.scale, a.min_ms):
        out.write(f"{step},{rank},{delay:.3f}\n")


if __name__ == "__main__":
    main()
