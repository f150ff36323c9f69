"""What the tests that check braid against PyTorch itself share: running `braid train` under
mpirun and reading its per-step losses, PyTorch's own training loop, the comparison, and the
check that a bad input is refused with exit 2 naming it."""
import json
import os
import subprocess
import sys


def import_torch():
    """numpy and torch, or exit 77 (CTest: skipped) when python3-torch is missing."""
    try:
        import numpy
        import torch
    except ImportError:
        print("SKIP: python3 cannot import torch and numpy (apt-get install python3-torch)")
        sys.exit(77)
    torch.set_num_threads(1)
    return numpy, torch


def write_config(tmp, name, text):
    """`text` as <tmp>/<name>.yaml; returns its path."""
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def braid_losses(braid, mpirun, ranks, config, run):
    """Per-step losses (mean over ranks) of `braid train config` with log_every 1."""
    done = subprocess.run(mpirun + [str(ranks), braid, "train", config], capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"braid train {config} failed with exit {done.returncode}:\n{done.stderr}")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [r["loss"] for r in sorted((r for r in records if "loss" in r), key=lambda r: r["step"])]


def pytorch_losses(model, optimizer, loss_of, steps):
    """PyTorch's own loop: `steps` steps of `optimizer` on loss_of(model); the loss before each."""
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_of(model)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def worst(a, b, steps):
    """Largest relative difference of two loss curves of `steps` steps each."""
    assert len(a) == len(b) == steps, (len(a), len(b))
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


def compare(what, got, expected, unaveraged, steps, tolerance, failures,
            control_name="without averaging"):
    """braid's losses must follow PyTorch's within `tolerance`; the control (by default without
    averaging: rank 0's share of the batch alone) must not."""
    error, control = worst(got, expected, steps), worst(got, unaveraged, steps)
    print(f"{what}: braid vs PyTorch {error:.2e} (tolerance {tolerance:g}); "
          f"vs PyTorch {control_name} {control:.2e} (must exceed it)")
    if not error < tolerance:
        failures.append(f"{what}: losses differ by {error:.2e}")
    if not control > tolerance:
        failures.append(f"{what}: the control without averaging passed")


def expect_refused(braid, mpirun, ranks, config, needles, what, failures):
    """`braid train config` must exit 2 with a line naming every one of `needles`."""
    needles = [needles] if isinstance(needles, str) else needles
    done = subprocess.run(mpirun + [str(ranks), braid, "train", config], capture_output=True,
                          text=True)
    said = done.stderr + done.stdout
    lines = [line for line in said.splitlines() if all(n in line for n in needles)]
    if done.returncode != 2 or not lines:
        failures.append(f"{what}: exit {done.returncode}: {said[-800:]}")
    else:
        print(f"{what}: exit 2, {lines[0][:200]}")


def report(failures):
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0
