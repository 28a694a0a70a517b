#!/usr/bin/python3
"""Writes the PyTorch reference fixtures for NearML.Training's engine tests.

Run with Debian's interpreter (python3-torch 1.13 CPU):
    /usr/bin/python3 tests/NearML.Training.Tests/torch/gen_engine.py

Output (committed; the tests need no torch):
    tests/NearML.Training.Tests/Fixtures/engine/engine.safetensors   all tensors, F32, named "<case>.<key>"
    tests/NearML.Training.Tests/Fixtures/engine/engine.json          the cases, their tensor keys and attributes

Every case is seeded. Op cases store the inputs (x, w, b, ...), the output (out), a random output
gradient (gout) and the input gradients torch computes for out.backward(gout) (grad.<input>). Integer
inputs (class targets, token ids) are stored as exactly representable F32. Model cases use the exact
model definitions of ../shared/bench/pytorch (bench_mlp/bench_cnn/bench_gpt) and store every parameter
(param.<name>), its gradient (grad.<name>), the logits and the loss.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "Fixtures", "engine")
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def find_bench_dir():
    d = REPO
    for _ in range(6):
        cand = os.path.join(os.path.dirname(d), "shared", "bench", "pytorch")
        if os.path.isdir(cand):
            return cand
        d = os.path.dirname(d)
    raise SystemExit("cannot find ../shared/bench/pytorch (the reference model definitions)")


sys.path.insert(0, find_bench_dir())
import bench_cnn  # noqa: E402
import bench_gpt  # noqa: E402

torch.set_num_threads(1)
tensors = {}
cases = {}


def put(case, key, t):
    t = t.detach().to(torch.float32).contiguous()
    if t.dim() == 0:
        t = t.reshape(1)
    tensors[f"{case}.{key}"] = t
    cases[case]["keys"].append(key)


def new_case(name, op, **attrs):
    cases[name] = {"op": op, "attrs": attrs, "keys": []}


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_(True)


def op_case(name, op, fn, inputs, attrs=None, extra=None):
    """inputs: dict key -> leaf tensor; fn(**inputs) -> output."""
    new_case(name, op, **(attrs or {}))
    for k, v in inputs.items():
        put(name, k, v)
    for k, v in (extra or {}).items():
        put(name, k, v)
    out = fn(**inputs)
    put(name, "out", out)
    gout = torch.randn_like(out)
    put(name, "gout", gout)
    out.backward(gout)
    for k, v in inputs.items():
        if v.requires_grad:
            put(name, "grad." + k, v.grad)


def main():
    torch.manual_seed(1234)

    # ---- linear with fused activations
    for act in ["none", "relu", "gelu", "gelu_tanh"]:
        def f(x, w, b, act=act):
            y = F.linear(x, w, b)
            if act == "relu":
                return F.relu(y)
            if act == "gelu":
                return F.gelu(y)
            if act == "gelu_tanh":
                return F.gelu(y, approximate="tanh")
            return y
        op_case(f"linear_{act}", "linear", f,
                {"x": leaf(2, 3, 7), "w": leaf(5, 7, scale=0.5), "b": leaf(5)}, {"activation": act})
    op_case("linear_nobias", "linear", lambda x, w: F.linear(x, w),
            {"x": leaf(4, 6), "w": leaf(3, 6)}, {"activation": "none"})

    # ---- matmul
    op_case("matmul_2d", "matmul", lambda a, b: a @ b, {"a": leaf(2, 3, 4), "b": leaf(4, 5)},
            {"transA": False, "transB": False})
    op_case("matmul_2d_tb", "matmul", lambda a, b: a @ b.t(), {"a": leaf(3, 4), "b": leaf(5, 4)},
            {"transA": False, "transB": True})
    for ta in (False, True):
        for tb in (False, True):
            a = leaf(2, 4, 3) if ta else leaf(2, 3, 4)
            b = leaf(2, 5, 4) if tb else leaf(2, 4, 5)
            op_case(f"bmm_{int(ta)}{int(tb)}", "matmul",
                    lambda a, b, ta=ta, tb=tb: (a.transpose(-1, -2) if ta else a) @ (b.transpose(-1, -2) if tb else b),
                    {"a": a, "b": b}, {"transA": ta, "transB": tb})

    # ---- element-wise
    op_case("add_same", "add", lambda a, b: a + b, {"a": leaf(3, 4), "b": leaf(3, 4)})
    op_case("add_bias", "add", lambda a, b: a + b, {"a": leaf(2, 3, 4), "b": leaf(4)})
    op_case("add_suffix", "add", lambda a, b: a + b, {"a": leaf(2, 3, 4), "b": leaf(3, 4)})
    op_case("mul", "mul", lambda a, b: a * b, {"a": leaf(3, 5), "b": leaf(3, 5)})
    op_case("scale", "scale", lambda x: x * 0.37, {"x": leaf(4, 3)}, {"scale": 0.37})
    op_case("relu", "relu", lambda x: F.relu(x), {"x": leaf(5, 6)})
    op_case("gelu", "gelu", lambda x: F.gelu(x), {"x": leaf(6, 7, scale=2.0)})
    op_case("gelu_tanh", "gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), {"x": leaf(6, 7, scale=2.0)})
    op_case("tanh", "tanh", lambda x: torch.tanh(x), {"x": leaf(4, 5)})
    op_case("softmax", "softmax", lambda x: F.softmax(x, dim=-1), {"x": leaf(3, 4, 6, scale=2.0)})
    op_case("log_softmax", "log_softmax", lambda x: F.log_softmax(x, dim=-1), {"x": leaf(5, 7, scale=2.0)})
    op_case("sum", "sum", lambda x: torch.sum(x), {"x": leaf(3, 4)})
    op_case("mean", "mean", lambda x: torch.mean(x), {"x": leaf(3, 4)})
    op_case("transpose", "transpose", lambda x: x.transpose(1, 2).contiguous(), {"x": leaf(2, 3, 4, 5)},
            {"dim0": 1, "dim1": 2})
    op_case("transpose_last", "transpose", lambda x: x.transpose(-1, -2).contiguous(), {"x": leaf(3, 4, 6)},
            {"dim0": 1, "dim1": 2})

    # ---- cross-entropy (targets stored as floats)
    logits = leaf(8, 5, scale=2.0)
    targets = torch.randint(0, 5, (8,))
    op_case("cross_entropy", "cross_entropy", lambda x: F.cross_entropy(x, targets), {"x": logits},
            extra={"targets": targets.float()})

    # ---- embedding
    ids = torch.randint(0, 7, (2, 5))
    op_case("embedding", "embedding", lambda w: F.embedding(ids, w), {"w": leaf(7, 4)},
            extra={"ids": ids.float()})

    # ---- layer norm (eps 1e-5)
    op_case("layer_norm", "layer_norm", lambda x, w, b: F.layer_norm(x, (6,), w, b, 1e-5),
            {"x": leaf(2, 3, 6, scale=3.0), "w": leaf(6), "b": leaf(6)})

    # ---- convolution (+ fused relu), max pooling
    op_case("conv2d", "conv2d", lambda x, w, b: F.conv2d(x, w, b),
            {"x": leaf(2, 3, 7, 6), "w": leaf(4, 3, 3, 3, scale=0.3), "b": leaf(4)},
            {"stride": 1, "padding": 0, "activation": "none"})
    op_case("conv2d_s2p1_relu", "conv2d", lambda x, w, b: F.relu(F.conv2d(x, w, b, stride=2, padding=1)),
            {"x": leaf(2, 2, 7, 8), "w": leaf(3, 2, 3, 3, scale=0.3), "b": leaf(3)},
            {"stride": 2, "padding": 1, "activation": "relu"})
    op_case("conv2d_p2", "conv2d", lambda x, w, b: F.conv2d(x, w, b, padding=2),
            {"x": leaf(1, 2, 5, 5), "w": leaf(3, 2, 3, 3, scale=0.3), "b": leaf(3)},
            {"stride": 1, "padding": 2, "activation": "none"})
    op_case("max_pool2d", "max_pool2d", lambda x: F.max_pool2d(x, 2), {"x": leaf(2, 3, 7, 6)},
            {"kernel": 2, "stride": 2})
    op_case("max_pool2d_k3s2", "max_pool2d", lambda x: F.max_pool2d(x, 3, 2), {"x": leaf(1, 2, 9, 8)},
            {"kernel": 3, "stride": 2})

    # ---- causal self-attention core, written out as bench_gpt.py does
    def attention(qkv, heads=2):
        B, T, C3 = qkv.shape
        C = C3 // 3
        hs = C // heads
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, heads, hs).transpose(1, 2)
        k = k.view(B, T, heads, hs).transpose(1, 2)
        v = v.view(B, T, heads, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T)
        att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        return (att @ v).transpose(1, 2).contiguous().view(B, T, C)
    op_case("attention", "attention", attention, {"qkv": leaf(2, 6, 24)}, {"heads": 2})

    # ---- models
    def model_case(name, model, loss_fn, inputs, attrs):
        new_case(name, "model", **attrs)
        for k, v in inputs.items():
            put(name, k, v)
        for pname, p in model.named_parameters():
            put(name, "param." + pname, p)
        logits, loss = loss_fn(model)
        put(name, "logits", logits)
        put(name, "loss", loss)
        model.zero_grad()
        loss.backward()
        for pname, p in model.named_parameters():
            put(name, "grad." + pname, p.grad)

    torch.manual_seed(7)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))
    x = torch.rand(6, 20)
    y = torch.randint(0, 5, (6,))
    model_case("mlp", mlp, lambda m: (m(x), F.cross_entropy(m(x), y)), {"x": x, "targets": y.float()},
               {"inputs": 20, "hidden": 16, "classes": 5})

    torch.manual_seed(8)
    cnn = bench_cnn.build_cnn()
    x = torch.rand(2, 1, 28, 28)
    y = torch.randint(0, 10, (2,))
    model_case("cnn", cnn, lambda m: (m(x), F.cross_entropy(m(x), y)), {"x": x, "targets": y.float()}, {})

    torch.manual_seed(9)
    V, T, B = 11, 16, 2
    gpt = bench_gpt.GPT(V, ctx=T, d_model=32, n_layer=2, n_head=2)
    # perturb LayerNorm/bias parameters so their gradients are exercised away from the (1, 0) init
    with torch.no_grad():
        for n_, p in gpt.named_parameters():
            if n_.endswith("bias") or ".ln" in n_ or n_.startswith("ln_f"):
                p.add_(torch.randn_like(p) * 0.1)
    idx = torch.randint(0, V, (B, T))
    tgt = torch.randint(0, V, (B, T))
    model_case("gpt", gpt, lambda m: (m(idx), m(idx, tgt)), {"tokens": idx.float(), "targets": tgt.float()},
               {"vocab": V, "ctx": T, "d_model": 32, "layers": 2, "heads": 2})

    # ---- write
    os.makedirs(OUT_DIR, exist_ok=True)
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(os.path.join(OUT_DIR, "engine.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(hj)))
        fh.write(hj)
        for b in blobs:
            fh.write(b)
    with open(os.path.join(OUT_DIR, "engine.json"), "w") as fh:
        json.dump({"generator": "tests/NearML.Training.Tests/torch/gen_engine.py", "torch": torch.__version__,
                   "cases": cases}, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"wrote {len(tensors)} tensors, {off} data bytes, {len(cases)} cases to {os.path.relpath(OUT_DIR)}")


if __name__ == "__main__":
    main()
