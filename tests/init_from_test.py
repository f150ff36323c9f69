#!/usr/bin/env python3
"""train.init_from starts a run from weights saved elsewhere, exactly as PyTorch would.

Usage: init_from_test.py BRAID MPIRUN... (MPIRUN ends with the -np flag)

A small language model (embedding, LayerNorm, a dropout that is off, a nested MLP) is scripted in
float64. Other weights for it are saved with Python's own torch.save(module.state_dict()) (an
OrderedDict, which LibTorch's pickle reader cannot read). braid trains 2 ranks with batch b for
10 steps of SGD with momentum from that file; PyTorch's loop on one process with batch 2b from
load_state_dict of the same file must give the same losses within 1e-9 relative, and the same
loop from the scripted module's own weights (what braid would do without init_from) must not.
A second run starts from the first run's directory (its last checkpoint, weights only) with
AdamW; PyTorch from the first run's model.pt with a fresh AdamW must match it, and PyTorch from
the first file must not. A state dict of another shape and a dictionary holding the state dict
are refused with exit 2 naming the file and what differs. Exits 77 without python3-torch.
"""
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from braid_pytorch import (braid_losses, compare, expect_refused, import_torch,  # noqa: E402
                           pytorch_losses, report, write_config)

np, torch = import_torch()
from torch import nn  # noqa: E402

VOCAB, CONTEXT, BATCH, STEPS, RANKS = 256, 8, 4, 10, 2
TOLERANCE = 1e-9


class TinyLM(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.ln = nn.LayerNorm(d)
        self.drop = nn.Dropout(0.0)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, VOCAB))

    def forward(self, x):
        return self.mlp(self.drop(self.ln(self.tok(x))))


def config(tmp, name, model_path, corpus, optimizer, init_from):
    run = os.path.join(tmp, "run-" + name)
    lines = [
        "run:", f"  dir: {run}", "  seed: 1",
        "model:", "  name: torchscript", f"  path: {model_path}", "  loss: cross_entropy",
        f"  context: {CONTEXT}",
        "data:", "  name: text", f"  path: {corpus}", f"  batch_size: {BATCH}",
        f"  train_limit: {RANKS * BATCH}", "  test_limit: 8",
        "optimizer:", f"  name: {optimizer}", "  lr: 0.05", "  momentum: 0.9",
        "train:", f"  epochs: {STEPS}", f"  max_steps: {STEPS}", "  log_every: 1",
        f"  init_from: {init_from}",
        "runtime:", "  threads: 1",
    ]
    return write_config(tmp, name, "\n".join(lines) + "\n"), run


def reference(model_path, weights, text, optimizer):
    """PyTorch's loop on the global batch, from `weights` (None: the module's own)."""
    model = torch.jit.load(model_path)
    if weights is not None:
        model.load_state_dict(weights, strict=True)
    model.train()
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=0.05, momentum=0.9) if optimizer == "sgd"
           else torch.optim.AdamW(params, lr=0.05, weight_decay=0.0))
    data = torch.tensor(list(text), dtype=torch.long)
    windows = RANKS * BATCH
    x = torch.stack([data[i * CONTEXT:(i + 1) * CONTEXT] for i in range(windows)])
    y = torch.stack([data[i * CONTEXT + 1:(i + 1) * CONTEXT + 1] for i in range(windows)])
    return pytorch_losses(
        model, opt, lambda m: nn.functional.cross_entropy(m(x).reshape(-1, VOCAB), y.reshape(-1)),
        STEPS)


def main():
    braid, mpirun = sys.argv[1], sys.argv[2:]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model_path = os.path.join(tmp, "tiny_lm.pt")
        torch.jit.script(TinyLM().double()).save(model_path)
        torch.manual_seed(5)
        start = TinyLM().double().state_dict()
        start_path = os.path.join(tmp, "start.pt")
        torch.save(start, start_path)
        rng = random.Random(0)
        text = "".join(rng.choice("abcdefgh ijklmnop\n") for _ in range(4000)).encode()
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "wb") as f:
            f.write(text)

        first, first_run = config(tmp, "from-file", model_path, corpus, "sgd", start_path)
        got = braid_losses(braid, mpirun, RANKS, first, first_run)
        compare("from torch.save(state_dict()), SGD", got,
                reference(model_path, start, text, "sgd"),
                reference(model_path, None, text, "sgd"), STEPS, TOLERANCE, failures,
                "from the module's own weights")

        second, second_run = config(tmp, "from-run", model_path, corpus, "adamw", first_run)
        got = braid_losses(braid, mpirun, RANKS, second, second_run)
        trained = torch.load(os.path.join(first_run, "model.pt"))
        compare("from a braid run directory, AdamW", got,
                reference(model_path, trained, text, "adamw"),
                reference(model_path, start, text, "adamw"), STEPS, TOLERANCE, failures,
                "from the first file")

        wider_path = os.path.join(tmp, "wider.pt")
        torch.save(TinyLM(d=24).double().state_dict(), wider_path)
        wider, _ = config(tmp, "wider", model_path, corpus, "sgd", wider_path)
        expect_refused(braid, mpirun, RANKS, wider,
                       [wider_path, "'tok.weight' is [256, 24] in the file but [256, 16]"],
                       "a state dict of another shape", failures)
        nested_path = os.path.join(tmp, "nested.pt")
        torch.save({"model": start, "step": 3}, nested_path)
        nested, _ = config(tmp, "nested", model_path, corpus, "sgd", nested_path)
        expect_refused(braid, mpirun, RANKS, nested, [nested_path, "entry 'model'"],
                       "a dictionary holding the state dict", failures)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
