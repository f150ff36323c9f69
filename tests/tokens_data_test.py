#!/usr/bin/env python3
"""data.name tokens: nanoGPT-style token files train under braid as in PyTorch itself.

Usage: tokens_data_test.py BRAID MPIRUN... (MPIRUN ends with the -np flag)

train.bin and val.bin are uint16 ids written with numpy.ndarray.tofile, from a vocabulary of
40000 so that ids above 32767 exercise the unsigned widening. A scripted float64 language model
(embedding, LayerNorm, head) trains with braid on 2 ranks x batch 4 windows of 8 tokens for 20
AdamW steps; PyTorch's loop on one process over the same 8 windows must give the same per-step
losses within 1e-9 relative; the control (rank 0's half alone) must miss. Refused with exit 2
naming the file: a size that is not a whole number of tokens, and an id at or above the model's
vocabulary in the first block. Exits 77 without python3-torch.
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

VOCAB, D, CONTEXT, BATCH, STEPS, RANKS = 40000, 8, 8, 4, 20, 2
TOLERANCE = 1e-9


class TokenLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D)
        self.ln = nn.LayerNorm(D)
        self.head = nn.Linear(D, VOCAB)

    def forward(self, x):
        return self.head(self.ln(self.tok(x)))


def write_tokens(directory, rng, damage=None):
    os.makedirs(directory, exist_ok=True)
    for name, count in (("train.bin", 400), ("val.bin", 100)):
        ids = rng.integers(0, VOCAB, count).astype(np.uint16)
        ids[:4] = [32767, 32768, 39999, 65535 % VOCAB]
        ids.tofile(os.path.join(directory, name))
    if damage:
        damage(directory)


def config(tmp, data, name, extra=""):
    run = os.path.join(tmp, "run-" + name)
    text = f"""run: {{dir: {run}, seed: 1}}
model: {{name: torchscript, path: {os.path.join(tmp, "lm.pt")}, loss: cross_entropy}}
data: {{name: tokens, path: {data}, context: {CONTEXT}, batch_size: {BATCH},
        train_limit: {RANKS * BATCH}, test_limit: 4{extra}}}
optimizer: {{name: adamw, lr: 0.01, weight_decay: 0.1}}
train: {{epochs: {STEPS}, max_steps: {STEPS}, log_every: 1}}
runtime: {{threads: 1}}
"""
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, run


def reference(model_path, data, windows):
    model = torch.jit.load(model_path)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    ids = torch.from_numpy(np.fromfile(os.path.join(data, "train.bin"), dtype=np.uint16).astype(np.int64))
    x = torch.stack([ids[i * CONTEXT:(i + 1) * CONTEXT] for i in range(windows)])
    y = torch.stack([ids[i * CONTEXT + 1:(i + 1) * CONTEXT + 1] for i in range(windows)])
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def worst(a, b):
    assert len(a) == len(b) == STEPS, (len(a), len(b))
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


def odd_size(directory):
    with open(os.path.join(directory, "val.bin"), "ab") as f:
        f.write(b"\x01")


def id_too_large(directory):
    ids = np.fromfile(os.path.join(directory, "train.bin"), dtype=np.uint16)
    ids[10] = VOCAB + 7
    ids.tofile(os.path.join(directory, "train.bin"))


def main():
    braid, mpirun = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    failures = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model_path = os.path.join(tmp, "lm.pt")
        torch.jit.script(TokenLM().double()).save(model_path)
        data = os.path.join(tmp, "tokens")
        write_tokens(data, rng)
        path, run = config(tmp, data, "good")
        done = subprocess.run(mpirun + [str(RANKS), braid, "train", path], capture_output=True,
                              text=True)
        if done.returncode != 0:
            sys.exit(f"braid train failed with exit {done.returncode}:\n{done.stderr}")
        with open(os.path.join(run, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f]
        got = [r["loss"] for r in sorted((r for r in records if "loss" in r), key=lambda r: r["step"])]
        error = worst(got, reference(model_path, data, RANKS * BATCH))
        control = worst(got, reference(model_path, data, BATCH))
        print(f"tokens: braid vs PyTorch {error:.2e} (tolerance {TOLERANCE:g}); "
              f"vs PyTorch without averaging {control:.2e} (must exceed it)")
        if not error < TOLERANCE:
            failures.append(f"losses differ by {error:.2e}")
        if not control > TOLERANCE:
            failures.append("the control without averaging passed")
        for damage, needle in ((odd_size, "val.bin"), (id_too_large, f"token id {VOCAB + 7}")):
            bad = os.path.join(tmp, damage.__name__)
            write_tokens(bad, rng, damage)
            path, _ = config(tmp, bad, damage.__name__)
            done = subprocess.run(mpirun + ["1", braid, "train", path], capture_output=True,
                                  text=True)
            said = done.stderr + done.stdout
            if done.returncode != 2 or needle not in said:
                failures.append(f"{damage.__name__}: exit {done.returncode}: {said[-600:]}")
            else:
                message = next(line for line in said.splitlines() if needle in line)
                print(f"{damage.__name__}: exit 2, {message[:200]}")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
