#!/usr/bin/env python3
"""Token files for braid's data.name tokens, as nanoGPT's prepare.py writes them.

    python3 examples/python/prepare.py /usr/share/games/fortunes data/fortunes

Reads a text file or every text file of a directory (sorted, skipping fortune's .dat indexes
and .u8 copies), takes its bytes as token ids (a byte-level vocabulary of 256), and writes the
first 95% as train.bin and the rest as val.bin: flat uint16 arrays (numpy.ndarray.tofile).
"""
import os
import sys

import numpy as np


def corpus(path):
    if os.path.isfile(path):
        return open(path, "rb").read()
    parts = []
    for name in sorted(os.listdir(path)):
        file = os.path.join(path, name)
        if os.path.isfile(file) and not name.endswith((".dat", ".u8")):
            parts.append(open(file, "rb").read())
    return b"".join(parts)


def main():
    source, out = sys.argv[1], sys.argv[2]
    ids = np.frombuffer(corpus(source), dtype=np.uint8).astype(np.uint16)
    split = int(len(ids) * 0.95)
    os.makedirs(out, exist_ok=True)
    ids[:split].tofile(os.path.join(out, "train.bin"))
    ids[split:].tofile(os.path.join(out, "val.bin"))
    print(f"{out}: {split} training and {len(ids) - split} validation tokens")


if __name__ == "__main__":
    main()
