#!/usr/bin/env bash
# A/B comparison of two builds of the GEMM benchmark, per ISA, alternating the sides so machine noise hits both.
#
#   benchmarks/gemm-ab.sh BEFORE_DIR AFTER_DIR [--rounds R] [--threads T] [--isa "avx512 avx2"] [--only SUBSTR] [--out FILE]
#
# BEFORE_DIR / AFTER_DIR hold a Release build of NearML.Benchmarks (e.g. a copy of
# benchmarks/NearML.Benchmarks/bin/Release/net10.0 taken before a change). Each round runs, for each ISA, the whole
# `compare gemm` suite on BEFORE then AFTER. Raw JSON lines (with side, round and the 1-minute load average) go to
# --out; the table printed at the end has, per ISA and shape, the medians over rounds of wall-clock GFLOP/s and of
# GFLOP per CPU-second (discounts time the process was not scheduled), and the best single call over all rounds
# (preemption only adds time, so on a shared machine this is the steadiest estimate of what the kernel can do).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0"
  exit 2
fi

before=$1
after=$2
shift 2
rounds=3
threads=2
isas="avx512 avx2"
only=""
out=$(mktemp /tmp/gemm-ab.XXXXXX.jsonl)
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --isa) isas=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

: > "$out"
for round in $(seq "$rounds"); do
  for isa in $isas; do
    for side in before after; do
      dir=$before
      [[ $side == after ]] && dir=$after
      load=$(cut -d' ' -f1 /proc/loadavg)
      echo "round $round $isa $side (load $load)" >&2
      dotnet "$dir/NearML.Benchmarks.dll" compare gemm --threads "$threads" --isa "$isa" --repeats 3 --min-time 0.15 \
        ${only:+--only "$only"} 2>/dev/null \
        | sed "s/^{/{\"side\":\"$side\",\"round\":$round,\"loadavg_1m\":$load,/" >> "$out"
    done
  done
done

echo "raw lines: $out" >&2
python3 - "$out" <<'EOF'
import collections, json, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    j = json.loads(line)
    d[(j["isa"], j["workload"], j["side"])].append((j["value"], j["gflop_per_cpu_s"], j["best_call_gflops"]))
print("| ISA | shape | GFLOP/s before | after | GFLOP/CPU-s before | after | best call before | after | after/before (best call) |")
print("|---|---|---|---|---|---|---|---|---|")
for isa, shape in sorted({(i, w) for i, w, _ in d}):
    b, a = d[(isa, shape, "before")], d[(isa, shape, "after")]
    if not a or not b:
        continue
    bw, aw = statistics.median(x[0] for x in b), statistics.median(x[0] for x in a)
    bc, ac = statistics.median(x[1] for x in b), statistics.median(x[1] for x in a)
    bb, ab = max(x[2] for x in b), max(x[2] for x in a)
    print(f"| {isa} | {shape.removeprefix('gemm_')} | {bw:.1f} | {aw:.1f} | {bc:.1f} | {ac:.1f} | {bb:.1f} | {ab:.1f} | {ab / bb:.2f} |")
EOF
