#!/usr/bin/python3
"""Plots one metric of braid run directories against another, one line per run.

    scripts/plot_runs.py RUN_DIR... --x step|time_s|bytes_sent --y loss|test_loss|test_accuracy
                         -o out.png

Reads RUN_DIR/metrics.jsonl (format: README.md, "The run directory") and labels each line with
the run's name, the directory's basename. Evaluation lines carry no bytes_sent; since all x
fields are running totals, such a line is placed at the latest value logged before it, so test
accuracy can be plotted against bytes on the wire. Bad input (no metrics.jsonl, an unreadable
line, a field no line has) exits 2 with a message naming the file. Renders headless (Agg), with
Debian's python3-matplotlib, hence /usr/bin/python3.
"""

import argparse
import json
import os
import sys

# field -> (axis label with unit, scale applied to the values)
X_FIELDS = {
    "step": ("optimizer step", 1.0),
    "time_s": ("training time (s)", 1.0),
    "bytes_sent": ("bytes sent by rank 0 (MB)", 1e-6),
}
Y_FIELDS = {
    "loss": ("training loss (mean since the previous line)", 1.0),
    "test_loss": ("test loss", 1.0),
    "test_accuracy": ("test accuracy (fraction correct)", 1.0),
}


class InputError(Exception):
    """Bad input: reported on stderr with exit status 2."""


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_points(path, x_field, y_field):
    """The (x, y) pairs of one metrics.jsonl, in file order."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (is this a braid run directory?)")
    points = []
    latest_x = None
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{number}: not a JSON object: {e}") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: not a JSON object")
            for field in (x_field, y_field):
                if field in record and not is_number(record[field]):
                    raise InputError(f"{path}:{number}: '{field}' is not a number")
            if x_field in record:
                latest_x = record[x_field]
            if y_field in record and latest_x is not None:
                points.append((latest_x, record[y_field]))
    if not points:
        raise InputError(f"{path}: no line has '{y_field}' (with '{x_field}' on it or before it)")
    return points


def run_names(run_dirs):
    """The basename of each run directory, or the path as given where basenames collide."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    return [n if names.count(n) == 1 else d for n, d in zip(names, run_dirs)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--x", choices=X_FIELDS, default="step", help="default: step")
    parser.add_argument("--y", choices=Y_FIELDS, default="loss", help="default: loss")
    parser.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    args = parser.parse_args()

    try:
        series = [read_points(os.path.join(d, "metrics.jsonl"), args.x, args.y)
                  for d in args.run_dirs]
    except (InputError, OSError, UnicodeDecodeError) as e:
        print(f"plot_runs: {e}", file=sys.stderr)
        return 2

    try:
        import matplotlib
    except ImportError:
        print("plot_runs: needs matplotlib (apt-get install python3-matplotlib)", file=sys.stderr)
        return 1
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_label, x_scale = X_FIELDS[args.x]
    y_label, y_scale = Y_FIELDS[args.y]
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, points in zip(run_names(args.run_dirs), series):
        axes.plot([x * x_scale for x, _ in points], [y * y_scale for _, y in points],
                  marker="o" if len(points) < 20 else None, label=name)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(args.output)
    except OSError as e:
        print(f"plot_runs: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
