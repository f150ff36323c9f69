#!/usr/bin/python3
"""PyTorch DDP (Gloo) training a scripted model on token files: the baseline of bench/gpt_vs_ddp.sh.

    mpirun -np 2 /usr/bin/python3 bench/ddp_gpt.py --model gpt.pt --data data/fortunes \
        --batch 4 --context 128 --steps 40 --warmup 5 [--powersgd-rank 4] --out result.json

One process per rank, started by mpirun (so that launch/braid-slowlink puts them behind the
same emulated link as braid's ranks); Gloo meets on 127.0.0.1 over loopback. Each process loads
the same TorchScript file braid trains (torch.jit.load), wraps it in DistributedDataParallel and
trains with AdamW on the windows braid's data.name tokens reads at the same run.seed
(non-overlapping windows of `context` + 1 tokens in braid's order, every rank its own share). With
--powersgd-rank r, PyTorch's own powerSGD_hook compresses the gradients (error feedback and warm
start on, its minimum of 2 dense warm-up iterations). Rank 0 writes one JSON object: samples/s
over the steps after --warmup (from a barrier to a barrier), and the mean over ranks of the loss
at every step.
"""
import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before torch loads OpenBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402


class MT19937_64:
    """std::mt19937_64, so that the windows are braid's (runtime/data.cpp DataPlan)."""
    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.mt = [seed & self.MASK]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & self.MASK)
        self.index = 312

    def __call__(self):
        if self.index == 312:
            mt = self.mt
            for i in range(312):
                x = (mt[i] & 0xFFFFFFFF80000000) | (mt[(i + 1) % 312] & 0x7FFFFFFF)
                mt[i] = mt[(i + 156) % 312] ^ (x >> 1) ^ (0xB5026F5AA96619E9 if x & 1 else 0)
            self.index = 0
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & self.MASK


def braid_permutation(samples, seed, epoch=0):
    """The order in which braid reads `samples` windows in `epoch` (Fisher-Yates on mt19937_64)."""
    rng = MT19937_64(seed * 1000003 + epoch)
    p = list(range(samples))
    for i in range(samples - 1, 0, -1):
        j = rng() % (i + 1)
        p[i], p[j] = p[j], p[i]
    return p


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="TorchScript file (torch.jit.save)")
    p.add_argument("--data", required=True, help="directory holding train.bin (uint16)")
    p.add_argument("--batch", type=int, default=4, help="windows per rank and step")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--powersgd-rank", type=int, default=0, help="0: dense allreduce")
    p.add_argument("--bucket-mb", type=float, default=25, help="DDP's bucket_cap_mb (dense)")
    p.add_argument("--port", type=int, default=29517)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    return p.parse_args()


def main():
    args = parse_args()
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    world = int(os.environ["OMPI_COMM_WORLD_SIZE"])
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", rank=rank, world_size=world)

    module = torch.jit.load(args.model)
    # Gloo cannot broadcast bool tensors (the attention masks); every rank loaded the same file.
    DDP._set_params_and_buffers_to_ignore_for_model(
        module, [name for name, b in module.named_buffers() if b.dtype == torch.bool])
    # powerSGD_hook chains allreduces from Gloo's callback threads; with several buckets in
    # flight the two ranks issued them in different orders here and Gloo aborted on a size
    # mismatch. One bucket (the whole 77 MB model) keeps them in order.
    model = DDP(module, bucket_cap_mb=args.bucket_mb if args.powersgd_rank == 0 else 1024)
    if args.powersgd_rank > 0:
        state = powersgd.PowerSGDState(process_group=None,
                                       matrix_approximation_rank=args.powersgd_rank,
                                       start_powerSGD_iter=2, use_error_feedback=True,
                                       warm_start=True, random_seed=args.seed)
        model.register_comm_hook(state, powersgd.powerSGD_hook)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    tokens = np.memmap(os.path.join(args.data, "train.bin"), dtype=np.uint16, mode="r")
    windows = (len(tokens) - 1) // args.context
    order = braid_permutation(windows, args.seed)
    losses = []
    for step in range(args.steps):
        if step == args.warmup:
            dist.barrier()
            start = time.perf_counter()
        first = (step * world + rank) * args.batch
        batch = torch.stack([torch.from_numpy(tokens[w * args.context:(w + 1) * args.context + 1]
                                              .astype(np.int64)) for w in order[first:first + args.batch]])
        x, y = batch[:, :-1], batch[:, 1:]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    dist.barrier()
    seconds = time.perf_counter() - start
    mean_losses = torch.tensor(losses, dtype=torch.float64)
    dist.all_reduce(mean_losses)
    mean_losses /= world
    if rank == 0:
        timed = args.steps - args.warmup
        with open(args.out, "w") as f:
            json.dump({"samples_per_s": timed * world * args.batch / seconds,
                       "step_s": seconds / timed,
                       "losses": mean_losses.tolist(),
                       "parameters": sum(p.numel() for p in model.parameters())}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
