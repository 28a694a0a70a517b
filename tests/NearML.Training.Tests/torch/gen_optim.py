#!/usr/bin/python3
"""Reference fixtures for NearML's optimizers and learning-rate schedules.

Runs torch.optim.SGD / Adam / AdamW (PyTorch 1.13, CPU, single-tensor code path: foreach=False)
for K steps on seeded parameters and per-step gradients, and records the parameters and optimizer
state after every step, plus LambdaLR learning rates for the warm-up + cosine schedule.

Run from the repository root with Debian's interpreter (it has python3-torch):
    /usr/bin/python3 tests/NearML.Training.Tests/torch/gen_optim.py
Output: tests/NearML.Training.Tests/Fixtures/optim/optim.json (float32 arrays as base64 of
little-endian bytes, concatenated in the order of "tensors").
"""
import base64
import json
import math
import os

import numpy as np
import torch

K = 5
SHAPES = [("w1", [3, 4]), ("b1", [5]), ("conv", [2, 3, 4]), ("scale", [7])]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "optim", "optim.json")


def b64(tensors):
    flat = np.concatenate([t.detach().numpy().astype("<f4").ravel() for t in tensors])
    return base64.b64encode(flat.tobytes()).decode("ascii")


def make_inputs():
    g = torch.Generator().manual_seed(1234)
    params = [torch.randn(*s, generator=g) for _, s in SHAPES]
    grads = []
    for k in range(K):
        step = []
        for i, (_, s) in enumerate(SHAPES):
            t = torch.randn(*s, generator=g) * (0.1 * (i + 1))
            if k == 2:
                t.view(-1)[0] = 0.0  # an exactly-zero gradient element
            if i == 3:
                t = t * 1e-4  # tiny gradients: eps matters
            step.append(t)
        grads.append(step)
    return params, grads


def run(case, params0, grads):
    params = [p.clone().requires_grad_(True) for p in params0]
    kind, opts, lrs = case["optimizer"], dict(case["options"]), case.get("lrs")
    groups = params
    no_decay = case.get("no_decay")
    if no_decay:
        # two parameter groups: the listed tensors get weight_decay=0 (the C# side's WeightDecayFilter)
        names = [n for n, _ in SHAPES]
        groups = [
            {"params": [p for n, p in zip(names, params) if n not in no_decay]},
            {"params": [p for n, p in zip(names, params) if n in no_decay], "weight_decay": 0.0},
        ]
    if kind == "sgd":
        opt = torch.optim.SGD(groups, foreach=False, **opts)
    elif kind == "adamw":
        opt = torch.optim.AdamW(groups, foreach=False, **opts)
    elif kind == "adam":
        opt = torch.optim.Adam(groups, foreach=False, **opts)
    else:
        raise ValueError(kind)
    steps = []
    for k in range(K):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        for p, gr in zip(params, grads[k]):
            p.grad = gr.clone()
        opt.step()
        state = {}
        names = {"sgd": ["momentum_buffer"], "adamw": ["exp_avg", "exp_avg_sq"], "adam": ["exp_avg", "exp_avg_sq"]}[kind]
        for n in names:
            if all(n in opt.state[p] and opt.state[p][n] is not None for p in params):
                state[n] = b64([opt.state[p][n] for p in params])
        if kind != "sgd":
            state["step"] = float(opt.state[params[0]]["step"].item())
        steps.append({"params": b64(params), "state": state})
    return {**case, "steps": steps}


def warmup_cosine_lambda(warmup, total, min_ratio):
    def f(s):
        if s < warmup:
            return (s + 1) / warmup
        if s >= total:
            return min_ratio
        progress = (s - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def schedule(base, warmup, total, min_ratio, n):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine_lambda(warmup, total, min_ratio))
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return {"base": base, "warmup": warmup, "total": total, "min": base * min_ratio, "lrs": lrs}


def main():
    torch.manual_seed(0)
    params0, grads = make_inputs()
    sched = schedule(3e-3, 4, 20, 0.1, 26)
    cases = [
        {"name": "sgd_plain", "optimizer": "sgd", "options": {"lr": 0.1}},
        {"name": "sgd_momentum", "optimizer": "sgd", "options": {"lr": 0.05, "momentum": 0.9}},
        {"name": "sgd_momentum_dampening", "optimizer": "sgd", "options": {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}},
        {"name": "sgd_nesterov", "optimizer": "sgd", "options": {"lr": 0.7, "momentum": 0.9, "nesterov": True}},
        {"name": "sgd_weight_decay", "optimizer": "sgd", "options": {"lr": 0.1, "weight_decay": 0.05}},
        {"name": "sgd_nesterov_weight_decay", "optimizer": "sgd", "options": {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}},
        {"name": "adamw_default", "optimizer": "adamw", "options": {"lr": 1e-3, "weight_decay": 0.01}},
        {"name": "adamw_large_lr", "optimizer": "adamw", "options": {"lr": 0.05, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1}},
        {"name": "adamw_scheduled", "optimizer": "adamw", "options": {"lr": 3e-3, "weight_decay": 0.01}, "lrs": sched["lrs"][:K]},
        {"name": "adam_weight_decay", "optimizer": "adam", "options": {"lr": 0.01, "weight_decay": 0.1}},
        {"name": "adamw_no_decay_group", "optimizer": "adamw", "options": {"lr": 0.05, "weight_decay": 0.1}, "no_decay": ["b1", "scale"]},
        {"name": "sgd_no_decay_group", "optimizer": "sgd", "options": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05}, "no_decay": ["b1", "scale"]},
        {"name": "adam_no_decay_group", "optimizer": "adam", "options": {"lr": 0.01, "weight_decay": 0.1}, "no_decay": ["b1", "scale"]},
    ]
    out = {
        "generator": "tests/NearML.Training.Tests/torch/gen_optim.py",
        "torch": torch.__version__,
        "k": K,
        "tensors": [{"name": n, "shape": s} for n, s in SHAPES],
        "params0": b64(params0),
        "grads": [b64(g) for g in grads],
        "cases": [run(c, params0, grads) for c in cases],
        "schedule": sched,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
