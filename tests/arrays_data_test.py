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
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from braid_pytorch import (braid_losses, compare, expect_refused, import_torch,  # noqa: E402
                           pytorch_losses, report)
from braid_pytorch import write_config as write_yaml  # noqa: E402

np, torch = import_torch()
from torch import nn  # noqa: E402

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
    return write_yaml(tmp, name, text), run


def reference(model_path, data, rows):
    model = torch.jit.load(model_path)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.from_numpy(np.load(os.path.join(data, "x_train.npy"))[:rows]).double()
    y = torch.from_numpy(np.load(os.path.join(data, "y_train.npy"))[:rows])
    return pytorch_losses(model, opt, lambda m: nn.functional.cross_entropy(m(x), y), STEPS)


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
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        torch.jit.script(Mlp().double()).save(os.path.join(tmp, "mlp.pt"))
        data = os.path.join(tmp, "arrays")
        write_arrays(data)
        config, run = write_config(tmp, data, "good")
        got = braid_losses(braid, mpirun, RANKS, config, run)
        model_path = os.path.join(tmp, "mlp.pt")
        compare("arrays", got, reference(model_path, data, RANKS * BATCH),
                reference(model_path, data, BATCH), STEPS, TOLERANCE, failures)
        for k, (name, damage, needle) in enumerate(malformations(data)):
            bad = os.path.join(tmp, f"bad{k}")
            write_arrays(bad)
            damage(os.path.join(bad, name))
            bad_config, _ = write_config(tmp, bad, f"bad{k}")
            expect_refused(braid, mpirun, 1, bad_config, [os.path.join(bad, name), needle],
                           f"{damage.__name__} {name}", failures)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
