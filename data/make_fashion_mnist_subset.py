#!/usr/bin/env python3
"""Cuts the Fashion-MNIST subset shipped in data/fashion-mnist-subset from the full data set.

Deterministic (python3 standard library only): the first TRAIN training images and labels and the first TEST test
images and labels, kept in IDX format, gzip'd at level 9 with mtime 0 and no file name, so the bytes are the same on
every run. Writes SHA256SUMS (sha256sum format, checked by the tests) next to the files.

    python3 data/make_fashion_mnist_subset.py [--source /usr/share/datasets/fashion-mnist] [--out data/fashion-mnist-subset]

The source is Debian's dataset-fashion-mnist package (or any folder with the four original .gz files).
Fashion-MNIST: Copyright (c) 2017 Zalando SE, MIT licence (see LICENSE in the output folder).
"""
import argparse
import gzip
import hashlib
import io
import os
import struct

TRAIN = 10000
TEST = 2000

FILES = [
    ("train-images-idx3-ubyte", TRAIN),
    ("train-labels-idx1-ubyte", TRAIN),
    ("t10k-images-idx3-ubyte", TEST),
    ("t10k-labels-idx1-ubyte", TEST),
]


def cut(data, count):
    """Returns the IDX file `data` truncated to its first `count` items (header's first dimension rewritten)."""
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    dims = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
    if dims[0] < count:
        raise ValueError(f"only {dims[0]} items, {count} asked")
    item = 1
    for d in dims[1:]:
        item *= d
    header = 4 + 4 * ndim
    dims[0] = count
    return data[:4] + struct.pack(">" + "I" * ndim, *dims) + data[header:header + count * item]


def gzip_bytes(raw):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(raw)
    return buf.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion-mnist-subset"))
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sums = []
    for name, count in FILES:
        with gzip.open(os.path.join(a.source, name + ".gz"), "rb") as f:
            raw = f.read()
        out = gzip_bytes(cut(raw, count))
        with open(os.path.join(a.out, name + ".gz"), "wb") as f:
            f.write(out)
        sums.append(f"{hashlib.sha256(out).hexdigest()}  {name}.gz\n")
        print(f"{name}.gz: {count} items, {len(out)} bytes")
    with open(os.path.join(a.out, "SHA256SUMS"), "w", encoding="ascii", newline="\n") as f:
        f.writelines(sums)


if __name__ == "__main__":
    main()
