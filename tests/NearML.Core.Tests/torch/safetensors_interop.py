#!/usr/bin/env python3
"""Safetensors interop with PyTorch-side tooling, independent of NearML's C# code.

  write OUT.safetensors OUT.json   torch tensors (seeded) -> safetensors written with json+numpy only,
                                   plus a JSON of the exact values, for NearML to read and compare.
  read FILE                        parse a safetensors FILE (e.g. written by NearML) with json+numpy and
                                   load it into torch; print one JSON line {name: {shape, dtype, sum, values[:8]}}.

Run with Debian's interpreter: /usr/bin/python3 safetensors_interop.py ...
"""
import json
import struct
import sys

import numpy as np


def write(path, index_path):
    import torch
    g = torch.Generator().manual_seed(1234)
    tensors = {
        "fc1.weight": torch.randn(4, 3, generator=g),
        "fc1.bias": torch.randn(4, generator=g),
        "conv.weight": torch.randn(2, 1, 3, 3, generator=g),
        "scalar_like": torch.randn(1, generator=g),
    }
    header, blobs, off = {"__metadata__": {"format": "pt", "writer": "safetensors_interop.py"}}, [], 0
    # The reference writer orders data by (dtype alignment, name); names sorted suffice for one dtype.
    for name in sorted(tensors):
        arr = tensors[name].numpy().astype("<f4")
        b = arr.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    with open(index_path, "w") as f:
        json.dump({n: {"shape": list(t.shape), "values": [float(v) for v in t.flatten().tolist()]}
                   for n, t in tensors.items()}, f, indent=1)


def read(path):
    import torch
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {"__metadata__": meta}
    for name, info in header.items():
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(info["shape"])
        t = torch.from_numpy(arr.copy())
        out[name] = {"shape": list(t.shape), "sum": float(t.double().sum()), "first": [float(v) for v in t.flatten()[:8]]}
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "read":
        read(sys.argv[2])
    else:
        sys.exit("usage: safetensors_interop.py write OUT.safetensors OUT.json | read FILE")
