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
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from braid_pytorch import (braid_losses, compare, expect_refused, import_torch,  # noqa: E402
                           pytorch_losses, report)
from braid_pytorch import write_config as write_yaml  # noqa: E402

np, torch = import_torch()
from torch import nn  # noqa: E402

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
    return write_yaml(tmp, name, text), run


def reference(model_path, data, windows):
    model = torch.jit.load(model_path)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    ids = torch.from_numpy(np.fromfile(os.path.join(data, "train.bin"), dtype=np.uint16).astype(np.int64))
    x = torch.stack([ids[i * CONTEXT:(i + 1) * CONTEXT] for i in range(windows)])
    y = torch.stack([ids[i * CONTEXT + 1:(i + 1) * CONTEXT + 1] for i in range(windows)])
    return pytorch_losses(
        model, opt, lambda m: nn.functional.cross_entropy(m(x).reshape(-1, VOCAB), y.reshape(-1)),
        STEPS)


def odd_size(directory):
    with open(os.path.join(directory, "val.bin"), "ab") as f:
        f.write(b"\x01")


def id_too_large(directory):
    ids = np.fromfile(os.path.join(directory, "train.bin"), dtype=np.uint16)
    ids[10] = VOCAB + 7
    ids.tofile(os.path.join(directory, "train.bin"))


def main():
    braid, mpirun = sys.argv[1], sys.argv[2:]
    failures = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model_path = os.path.join(tmp, "lm.pt")
        torch.jit.script(TokenLM().double()).save(model_path)
        data = os.path.join(tmp, "tokens")
        write_tokens(data, rng)
        path, run = config(tmp, data, "good")
        got = braid_losses(braid, mpirun, RANKS, path, run)
        compare("tokens", got, reference(model_path, data, RANKS * BATCH),
                reference(model_path, data, BATCH), STEPS, TOLERANCE, failures)
        for damage, needle in ((odd_size, "val.bin"), (id_too_large, f"token id {VOCAB + 7}")):
            bad = os.path.join(tmp, damage.__name__)
            write_tokens(bad, rng, damage)
            path, _ = config(tmp, bad, damage.__name__)
            expect_refused(braid, mpirun, 1, path, [bad, needle], damage.__name__, failures)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
