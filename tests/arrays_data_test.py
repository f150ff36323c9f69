#!/usr/bin/env python3
"""data.name arrays: the user's own NumPy arrays train under braid as in PyTorch itself.

Usage: arrays_data_test.py BRAID MPIRUN... (MPIRUN ends with the -np flag)

x_train/y_train/x_test/y_test are written with numpy.save (float32 features, int64 labels); a
scripted float64 MLP trains on them with braid on 2 ranks x batch 4 for 20 steps of SGD with
momentum, and PyTorch's own loop on one process with batch 8 over the same rows must give the
same per-step losses within 1e-9 relative (the training set is one global batch, so the only
difference is the order of float64 additions; braid casts the float32 rows to the model's
float64 as the reference does). The control, PyTorch on rank 0's half alone, must miss it.
Malformed files (Fortran order, big-endian, a truncated file, a row count that differs from
x's, no .npy magic) exit 2 naming the file and the field. Exits 77 without python3-torch.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError:
    print("SKIP: python3 cannot import torch and numpy (apt-get install python3-torch)")
    sys.exit(77)

FEATURES, CLASSES, BATCH, STEPS, RANKS = 12, 3, 4, 20, 2
TOLERANCE = 1e-9


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))

    def forward(self, x):
        return self.body(x)


def write_arrays(directory, rows=40):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.save(os.path.join(directory, f"x_{split}.npy"),
                rng.standard_normal((rows, FEATURES)).astype(np.float32))
        np.save(os.path.join(directory, f"y_{split}.npy"),
                rng.integers(0, CLASSES, rows).astype(np.int64))


def write_config(tmp, data, name):
    run = os.path.join(tmp, "run-" + name)
    text = f"""run: {{dir: {run}, seed: 1}}
model: {{name: torchscript, path: {os.path.join(tmp, "mlp.pt")}, loss: cross_entropy}}
data: {{name: arrays, path: {data}, batch_size: {BATCH}, train_limit: {RANKS * BATCH}}}
optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}
train: {{epochs: {STEPS}, max_steps: {STEPS}, log_every: 1}}
runtime: {{threads: 1}}
"""
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, run


def braid_losses(braid, mpirun, config, run):
    done = subprocess.run(mpirun + [str(RANKS), braid, "train", config],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"braid train failed with exit {done.returncode}:\n{done.stderr}")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [r["loss"] for r in sorted((r for r in records if "loss" in r), key=lambda r: r["step"])]


def reference(model_path, data, rows):
    model = torch.jit.load(model_path)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.from_numpy(np.load(os.path.join(data, "x_train.npy"))[:rows]).double()
    y = torch.from_numpy(np.load(os.path.join(data, "y_train.npy"))[:rows])
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def worst(a, b):
    assert len(a) == len(b) == STEPS, (len(a), len(b))
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


# Each malformed variant: a file to break, how, and what the message must name.
def malformations(data):
    x = np.load(os.path.join(data, "x_train.npy"))
    y = np.load(os.path.join(data, "y_train.npy"))

    def fortran(path):
        np.save(path, np.asfortranarray(x))

    def big_endian(path):
        np.save(path, x.astype(">f4"))

    def truncated(path):
        with open(path, "rb") as f:
            content = f.read()
        with open(path, "wb") as f:
            f.write(content[:-7])

    def fewer_rows(path):
        np.save(path, y[:-1])

    def not_npy(path):
        with open(path, "wb") as f:
            f.write(b"x,y\n1,2\n")

    return [("x_train.npy", fortran, "'fortran_order' is True"),
            ("x_train.npy", big_endian, "field 'descr' is '>f4'"),
            ("x_train.npy", truncated, "the file has"),
            ("y_train.npy", fewer_rows, "rows, but x_train.npy has"),
            ("x_test.npy", not_npy, "not a .npy file")]


def main():
    braid, mpirun = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        torch.jit.script(Mlp().double()).save(os.path.join(tmp, "mlp.pt"))
        data = os.path.join(tmp, "arrays")
        write_arrays(data)
        config, run = write_config(tmp, data, "good")
        got = braid_losses(braid, mpirun, config, run)
        model_path = os.path.join(tmp, "mlp.pt")
        error = worst(got, reference(model_path, data, RANKS * BATCH))
        control = worst(got, reference(model_path, data, BATCH))
        print(f"arrays: braid vs PyTorch {error:.2e} (tolerance {TOLERANCE:g}); "
              f"vs PyTorch without averaging {control:.2e} (must exceed it)")
        if not error < TOLERANCE:
            failures.append(f"losses differ by {error:.2e}")
        if not control > TOLERANCE:
            failures.append("the control without averaging passed")
        for k, (name, damage, needle) in enumerate(malformations(data)):
            bad = os.path.join(tmp, f"bad{k}")
            write_arrays(bad)
            damage(os.path.join(bad, name))
            bad_config, _ = write_config(tmp, bad, f"bad{k}")
            done = subprocess.run(mpirun + ["1", braid, "train", bad_config],
                                  capture_output=True, text=True)
            said = done.stderr + done.stdout
            if done.returncode != 2 or needle not in said or name not in said:
                failures.append(f"{name} ({damage.__name__}): exit {done.returncode}: {said[-600:]}")
            else:
                message = next(line for line in said.splitlines() if needle in line)
                print(f"{damage.__name__} {name}: exit 2, {message[:160]}")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
