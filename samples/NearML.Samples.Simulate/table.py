"""Renders the simulator's JSON lines (one per run) as the markdown tables of docs/low-communication.md.

Every run is compared with the DDP run of the same model, N, steps per worker, batch and scenario (falling back to
the i.i.d. DDP run of that configuration). Lines without a "result" (e.g. --bench-demo) are skipped."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if "result" in r]


def key(c, scenario=None):
    return (c["Model"], c["Workers"], c["Steps"], c["Batch"], scenario or c["Scenario"])


ddp = {}
for r in rows:
    c, s = r["cfg"], r["result"]
    if c["Strategy"] == "ddp":
        ddp[key(c)] = s
print("| run | model | N | steps / worker | quality | Δ vs DDP | bytes sent / worker | × fewer than DDP | peak bytes / sync | syncs | rejected | wall s | CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    c, s = r["cfg"], r["result"]
    base = ddp.get(key(c)) or ddp.get(key(c, "iid"))
    label = s["Label"]
    if c["Strategy"] in ("diloco", "streaming") and (c["OuterLr"] != 0.7 or c["OuterMomentum"] != 0.9):
        label += f" outer {c['OuterLr']}/{c['OuterMomentum']}"
    if s["Metric"] == "validation loss":
        quality = f"loss {s['Quality']:.4f}"
        delta = f"{100 * (s['Quality'] / base['Quality'] - 1):+.1f} %" if base else ""
    else:
        quality = f"{s['Quality']:.2f} %"
        delta = f"{s['Quality'] - base['Quality']:+.2f} pt" if base else ""
    ratio = f"{base['BytesSentPerWorker'] / s['BytesSentPerWorker']:,.0f}" if base and s["BytesSentPerWorker"] else ""
    cpu = f"{r['cpu_s']:.0f}" if "cpu_s" in r else ""
    print(f"| {label} | {c['Model']} | {c['Workers']} | {c['Steps']} | {quality} | {delta} | {s['BytesSentPerWorker']:,} | {ratio} | "
          f"{s['PeakBytesPerSync']:,} | {s['Syncs']} | {s['Rejected']} | {s['WallSeconds']:.0f} | {cpu} |")
