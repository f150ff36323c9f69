#!/usr/bin/python3
"""Baseline for braid's training benchmark: PyTorch DDP over Gloo on CPU.

Trains a small model on Fashion-MNIST read straight from Debian's package files
and prints one JSON line with throughput. See bench/ddp_gloo_baseline.md.

Debian's python3-torch is only importable from /usr/bin/python3; if another
python3 (pyenv, venv) runs this file, it re-executes itself under that one.
"""
import argparse
import gzip
import importlib.util
import json
import os
import socket
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--np", type=int, default=2, help="number of ranks (processes)")
    p.add_argument("--single", action="store_true",
                   help="one plain process without DDP (same as --np 1)")
    p.add_argument("--batch", type=int, default=64, help="batch size per rank")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads per rank")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.single:
        args.np = 1
    return args


if __name__ == "__main__":
    ARGS = parse_args()
    if importlib.util.find_spec("torch") is None and sys.executable != "/usr/bin/python3":
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    # Debian's torch runs matmuls in the system OpenBLAS (openblas-pthread), whose
    # own thread pool ignores torch.set_num_threads and spins on every core, which
    # would oversubscribe the 2 ranks. OpenBLAS sizes that pool from the environment
    # when it loads, so set it before importing torch; spawned ranks inherit it.
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the OpenBLAS setting above, on purpose)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    # idx header: 2 zero bytes, dtype code (0x08 = uint8), ndim, then big-endian dims.
    assert buf[0] == 0 and buf[1] == 0 and buf[2] == 0x08, path
    ndim = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist():
    x = read_idx(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA_DIR, "train-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0).sub_(MEAN).div_(STD)
    return x.unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


def make_model(name):
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    raise ValueError(name)


def batch_indices(n, batch, world, rank, total_steps, seed):
    """Yield rank's slice of each global batch of a shuffled permutation.

    All ranks draw the same permutation (same seed), so block `rank` of each
    global batch of batch*world samples gives disjoint shards. A new permutation
    is drawn per epoch; the tail that does not fill a global batch is dropped.
    """
    g = torch.Generator().manual_seed(seed)
    gb = batch * world
    per_epoch = n // gb
    step = 0
    while step < total_steps:
        perm = torch.randperm(n, generator=g)
        for i in range(min(per_epoch, total_steps - step)):
            start = i * gb + rank * batch
            yield perm[start:start + batch]
        step += per_epoch


def worker(rank, args, port):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # identical init on all ranks (DDP also broadcasts)
    distributed = args.np > 1
    if distributed:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep Gloo on loopback
        dist.init_process_group("gloo", rank=rank, world_size=args.np)

    x, y = load_fashion_mnist()
    model = make_model(args.model)
    if distributed:
        model = DDP(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    batches = batch_indices(x.shape[0], args.batch, args.np, rank,
                            args.warmup + args.steps, args.seed)

    def train_step():
        idx = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        return loss.detach()

    for _ in range(args.warmup):
        train_step()

    if distributed:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step()
    if distributed:
        dist.barrier()
    elapsed = time.perf_counter() - t0

    # Outside the timed region: report the last step's loss averaged over ranks.
    if distributed:
        dist.all_reduce(loss)
        loss /= args.np
    if rank == 0:
        print(json.dumps({
            "framework": "pytorch_ddp_gloo" if distributed else "pytorch_single",
            "model": args.model,
            "ranks": args.np,
            "batch_per_rank": args.batch,
            "threads": args.threads,
            "steps": args.steps,
            "samples_per_s": round(args.steps * args.batch * args.np / elapsed, 1),
            "step_ms": round(1000.0 * elapsed / args.steps, 3),
            "final_loss": round(loss.item(), 5),
            "torch_version": torch.__version__,
        }), flush=True)
    if distributed:
        # Without this barrier a rank that tears down Gloo while its peer is still
        # finishing can sit in shutdown for minutes (pytorch/pytorch#75097).
        dist.barrier()
        dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    args = ARGS
    if args.np == 1:
        worker(0, args, None)
    else:
        mp.spawn(worker, args=(args, free_port()), nprocs=args.np, join=True)


if __name__ == "__main__":
    main()
