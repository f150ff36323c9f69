#!/usr/bin/env python3
"""A model defined in Python trains under braid exactly as in PyTorch itself.

Usage: torchscript_pytorch_test.py BRAID MPIRUN... (MPIRUN ends with the -np flag)

A small language model (token embedding, a learned position table, LayerNorm, a dropout that is
off, a nested MLP, a buffer) is converted to float64, scripted and saved. braid trains it with
model.name torchscript on 2 ranks with batch b for 20 steps, once with SGD and momentum and once
with AdamW; the same steps in a plain PyTorch loop on one process with batch 2b (the same
windows of the same text file) must give the same per-step losses within 1e-9 relative. The
training set is exactly one global batch, so every step of both sees the same 2b windows and
the only difference is the order of float64 additions (about 1e-16 per step). A reference
without averaging (rank 0's half of the batch alone) must miss the tolerance: the control that
shows the comparison can fail. braid's model.pt must load into the Python module with
load_state_dict(strict=True) and hold the reference's final weights. A module file that is not
TorchScript must be refused with exit 2 naming the file. Exits 77 (skipped) without python3-torch.
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

VOCAB, D, CONTEXT, BATCH, STEPS, RANKS = 256, 16, 8, 4, 20, 2
TOLERANCE = 1e-9


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(torch.randn(CONTEXT, D) * 0.1)
        self.ln = nn.LayerNorm(D)
        self.drop = nn.Dropout(0.0)
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.Tanh(), nn.Linear(2 * D, VOCAB))
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, x):
        h = self.tok(x) + self.pos[: x.size(1)]
        return self.mlp(self.drop(self.ln(h))) * (2 * self.scale)


def write_inputs(tmp):
    torch.manual_seed(0)
    model = TinyLM().double()
    path = os.path.join(tmp, "tiny_lm.pt")
    torch.jit.script(model).save(path)
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefgh ijklmnop\n") for _ in range(4000)).encode()
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "wb") as f:
        f.write(text)
    return path, corpus, text


def config(tmp, model_path, corpus, optimizer, name=None):
    name = name or optimizer
    run = os.path.join(tmp, "run-" + name)
    lines = [
        "run:", f"  dir: {run}", "  seed: 1",
        "model:", "  name: torchscript", f"  path: {model_path}", "  loss: cross_entropy",
        f"  context: {CONTEXT}",
        "data:", "  name: text", f"  path: {corpus}", f"  batch_size: {BATCH}",
        f"  train_limit: {RANKS * BATCH}", "  test_limit: 8",
        "optimizer:", f"  name: {optimizer}",
        "  lr: 0.1" if optimizer == "sgd" else "  lr: 0.01",
        "  momentum: 0.9", "  weight_decay: 0.1",
        "train:", f"  epochs: {STEPS}", f"  max_steps: {STEPS}", "  log_every: 1",
        "runtime:", "  threads: 1",
    ]
    return write_config(tmp, name, "\n".join(lines) + "\n"), run


def reference(model_path, text, optimizer, windows):
    model = torch.jit.load(model_path)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    else:
        opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)
    data = torch.tensor(list(text), dtype=torch.long)
    x = torch.stack([data[i * CONTEXT:(i + 1) * CONTEXT] for i in range(windows)])
    y = torch.stack([data[i * CONTEXT + 1:(i + 1) * CONTEXT + 1] for i in range(windows)])
    losses = pytorch_losses(
        model, opt, lambda m: nn.functional.cross_entropy(m(x).reshape(-1, VOCAB), y.reshape(-1)),
        STEPS)
    return losses, {name: p.detach() for name, p in model.named_parameters()}


def main():
    braid, mpirun = sys.argv[1], sys.argv[2:]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path, corpus, text = write_inputs(tmp)
        for optimizer in ("sgd", "adamw"):
            config_path, run = config(tmp, model_path, corpus, optimizer)
            got = braid_losses(braid, mpirun, RANKS, config_path, run)
            expected, weights = reference(model_path, text, optimizer, RANKS * BATCH)
            unaveraged, _ = reference(model_path, text, optimizer, BATCH)
            compare(optimizer, got, expected, unaveraged, STEPS, TOLERANCE, failures)
            module = TinyLM().double()
            module.load_state_dict(torch.load(os.path.join(run, "model.pt")), strict=True)
            drift = max(((module.state_dict()[n] - w).abs().max() / w.abs().max().clamp(min=1)).item()
                        for n, w in weights.items())
            print(f"{optimizer}: model.pt loads into the Python module; weights differ by {drift:.2e}")
            if not drift < TOLERANCE:
                failures.append(f"{optimizer}: model.pt weights differ by {drift:.2e}")
        not_scripted = os.path.join(tmp, "state_dict.pt")
        torch.save(TinyLM().state_dict(), not_scripted)
        bad_config, _ = config(tmp, not_scripted, corpus, "sgd", "state_dict")
        expect_refused(braid, mpirun, RANKS, bad_config, not_scripted,
                       "a state dict, not TorchScript", failures)
        wrong_loss, _ = config(tmp, model_path, corpus, "sgd", "mse")
        with open(wrong_loss) as f:
            text_config = f.read().replace("loss: cross_entropy", "loss: mse")
        with open(wrong_loss, "w") as f:
            f.write(text_config)
        expect_refused(braid, mpirun, RANKS, wrong_loss, "mse needs the targets'",
                       "logits given to model.loss mse", failures)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
