"""Renders the simulator's JSON lines (one per run) as the markdown table of docs/low-communication.md."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ddp = {}
for r in rows:
    c, s = r["cfg"], r["result"]
    if c["Strategy"] == "ddp":
        ddp[(c["Workers"], c["Scenario"])] = s
print("| run | N | test acc % | Δ vs DDP (pts) | bytes sent / worker | × fewer than DDP | peak bytes / sync | syncs | rejected | wall s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    c, s = r["cfg"], r["result"]
    base = ddp.get((c["Workers"], c["Scenario"])) or ddp.get((c["Workers"], "iid"))
    delta = f"{s['Quality'] - base['Quality']:+.2f}" if base else ""
    ratio = f"{base['BytesSentPerWorker'] / s['BytesSentPerWorker']:,.0f}" if base and s["BytesSentPerWorker"] else ""
    print(f"| {s['Label']} | {c['Workers']} | {s['Quality']:.2f} | {delta} | {s['BytesSentPerWorker']:,} | {ratio} | "
          f"{s['PeakBytesPerSync']:,} | {s['Syncs']} | {s['Rejected']} | {s['WallSeconds']:.0f} |")
