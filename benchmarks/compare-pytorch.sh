#!/usr/bin/env bash
# Runs the same workloads in NearML and in PyTorch on this machine, one process at a time, and prints one JSON object
# per line:
#   {"workload":...,"unit":...,"nearml":...,"pytorch":...,"ratio":...,"nearml_peak_rss_mb":...,"pytorch_peak_rss_mb":...}
# ratio > 1 means NearML is better (throughput: nearml/pytorch). Peak RSS comes from /usr/bin/time -v around each
# process; each workload runs in its own process on both sides, so the figure is that workload's peak.
#
# usage: benchmarks/compare-pytorch.sh [--threads N] [--workloads gemm,mlp,cnn,gpt] [--only SUBSTR] [--repeats R]
#                                      [--min-time S] [--quick] [--seeds 0,1,2] [--allow-reference-blas]
#   --workloads   comma list (default: gemm,mlp,cnn,gpt)
#   --seeds       MLP/CNN: one run per seed on both sides (model init and shuffle), then a "<workload>_seeds" summary
#                 line with mean ± sd of test accuracy and throughput (default: seed 0 only, no summary)
#   --only        GEMM shape-name substring filter (names as in bench_gemm.py)
#   --quick       smoke run: 1 epoch of MLP/CNN, GPT 1 warm-up + 10 steps (windows of 2); not the recipe
# The PyTorch side must run on an optimised BLAS (OpenBLAS: apt-get install libopenblas0-openmp). A run on the netlib
# reference BLAS is refused (exit 3) unless --allow-reference-blas, and then every line carries "valid":false.
# Progress and tool output go to stderr; stdout is only the JSON lines.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
threads=2
workloads=gemm,mlp,cnn,gpt
quick=0
only=""
repeats=5
min_time=0.3
allow_reference=0
seeds=0
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --min-time) min_time="$2"; shift 2 ;;
    --allow-reference-blas) allow_reference=1; shift ;;
    --quick) quick=1; shift ;;
    --seeds) seeds="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

shared=""
for candidate in "${NEARML_SHARED:-}" "$repo/../shared" "/work/shared"; do
  if [ -n "$candidate" ] && [ -f "$candidate/bench/pytorch/bench_gemm.py" ]; then shared="$(cd "$candidate" && pwd)"; break; fi
done
[ -n "$shared" ] || { echo "cannot find the shared folder with bench/pytorch (set NEARML_SHARED)" >&2; exit 2; }
ptdir="$shared/bench/pytorch"
py=/usr/bin/python3
[ -x /usr/bin/time ] || { echo "/usr/bin/time is required (apt-get install time)" >&2; exit 2; }

echo "building NearML.Benchmarks (Release)..." >&2
dotnet build -c Release "$repo/benchmarks/NearML.Benchmarks" -v q -nologo >&2
dll="$repo/benchmarks/NearML.Benchmarks/bin/Release/net10.0/NearML.Benchmarks.dll"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# run_timed OUT RSSFILE cmd...: stdout to OUT, peak RSS (MB) to RSSFILE; stderr passes through.
run_timed() {
  local out="$1" rss="$2"; shift 2
  /usr/bin/time -v -o "$work/time.txt" "$@" >"$out"
  awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); printf "%.1f\n", $2/1024}' "$work/time.txt" >"$rss"
  awk -F: '/User time|System time/ {gsub(/ /,"",$2); t += $2} END {printf "%.1f\n", t}' "$work/time.txt" >"$rss.cpu"
}

# merge WORKLOAD UNIT NEARML_JSON NEARML_RSS PYTORCH_JSON PYTORCH_RSS KIND: prints the comparison line; exits 3 when
# PyTorch did not run on an optimised BLAS (unless allowed).
merge() {
  "$py" - "$@" "$allow_reference" "$threads" <<'PY'
import json, os, sys
workload, unit, nfile, nrss, pfile, prss, kind, allow, threads = sys.argv[1:10]
def last_json(path):
    lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
    return json.loads(lines[-1])
n = last_json(nfile)
p = last_json(pfile)
env = p.get("env", {})
provider = env.get("blas_provider", "unknown")
valid = provider in ("OpenBLAS", "Intel MKL", "BLIS")
extra = {}
nv, nmin, nmax = n["value"], n["min"], n["max"]
if kind == "gemm":
    row = p["results"][0]
    pv = row["gflops"][threads]["median"]
    pmin, pmax = row["gflops"][threads]["min"], row["gflops"][threads]["max"]
    extra["nearml_managed_bytes_per_call"] = n.get("managed_bytes_per_call")
elif kind in ("mlp", "cnn"):
    pv, pmin, pmax = (p["samples_per_s"][x] for x in ("median", "min", "max"))
    pacc = p["per_epoch"][-1]["test_acc"]
    extra.update({"nearml_test_acc": n["test_acc"], "pytorch_test_acc": round(pacc, 4),
                  "test_acc_diff_points": round(100 * (n["test_acc"] - pacc), 2), "epochs": n["epochs"],
                  "nearml_managed_bytes_per_step": n["managed_bytes_per_step"], "seed": n.get("seed", 0),
                  "nearml_train_cpu_ms_per_step": n.get("train_cpu_ms_per_step"),
                  "nearml_train_wall_ms_per_step": n.get("train_wall_ms_per_step"),
                  "pytorch_ms_per_step": p.get("ms_per_step")})
elif kind == "gpt":
    pv, pmin, pmax = (p["tokens_per_s"][x] for x in ("median", "min", "max"))
    extra.update({"nearml_val_loss": n["val_loss_final"], "pytorch_val_loss": round(p["loss"]["val_loss_final"], 4),
                  "nearml_val_loss_step0": n["val_loss_step0"], "pytorch_val_loss_step0": round(p["loss"]["val_loss_step0"], 4),
                  "steps": n["steps"], "nearml_managed_bytes_per_step": n["managed_bytes_per_step"]})
else:
    raise SystemExit("unknown kind " + kind)
out = {
    "workload": workload, "unit": unit,
    "nearml": round(nv, 2), "pytorch": round(pv, 2), "ratio": round(nv / pv, 3),
    "nearml_peak_rss_mb": float(open(nrss).read().strip()), "pytorch_peak_rss_mb": float(open(prss).read().strip()),
    "nearml_process_cpu_s": float(open(nrss + ".cpu").read().strip()), "pytorch_process_cpu_s": float(open(prss + ".cpu").read().strip()),
    "nearml_min": round(nmin, 2), "nearml_max": round(nmax, 2), "pytorch_min": round(pmin, 2), "pytorch_max": round(pmax, 2),
    "threads": int(threads), "nearml_isa": n.get("isa"), **extra,
    "pytorch_blas": provider, "loadavg_1m": round(os.getloadavg()[0], 2), "valid": valid,
}
print(json.dumps(out, separators=(",", ":")), flush=True)
if not valid and allow != "1":
    sys.stderr.write("PyTorch ran on '%s', not an optimised BLAS: the comparison does not count. "
                     "Install libopenblas0-openmp (or pass --allow-reference-blas).\n" % provider)
    sys.exit(3)
PY
}

IFS=',' read -r -a wl <<<"$workloads"
for w in "${wl[@]}"; do
  case "$w" in
    gemm)
      names=$(dotnet "$dll" compare gemm --list ${only:+--only "$only"})
      for name in $names; do
        echo "== gemm $name (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        run_timed "$work/n.json" "$work/n.rss" dotnet "$dll" compare gemm --threads "$threads" --only "$name" \
          --repeats "$repeats" --min-time "$min_time"
        run_timed "$work/p.json" "$work/p.rss" "$py" "$ptdir/bench_gemm.py" --threads "$threads" --no-onednn \
          --only "$name" --repeats "$repeats" --min-time "$min_time" 2>"$work/p.err"
        merge "gemm_$name" "GFLOP/s" "$work/n.json" "$work/n.rss" "$work/p.json" "$work/p.rss" gemm
      done
      ;;
    mlp|cnn)
      epochs=()
      [ "$quick" = 1 ] && epochs=(--epochs 1)
      IFS=',' read -r -a seedlist <<<"$seeds"
      : >"$work/seeds.jsonl"
      for seed in "${seedlist[@]}"; do
        echo "== $w seed $seed (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        run_timed "$work/n.json" "$work/n.rss" dotnet "$dll" compare "$w" --threads "$threads" --seed "$seed" "${epochs[@]}"
        run_timed "$work/p.json" "$work/p.rss" "$py" "$ptdir/bench_$w.py" --threads "$threads" --seed "$seed" "${epochs[@]}" 2>"$work/p.err"
        merge "$w" "samples/s" "$work/n.json" "$work/n.rss" "$work/p.json" "$work/p.rss" "$w" | tee -a "$work/seeds.jsonl"
      done
      if [ "${#seedlist[@]}" -gt 1 ]; then
        "$py" - "$w" "$work/seeds.jsonl" <<'PY'
import json, os, statistics as st, sys
w, path = sys.argv[1:3]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
def ms(key, scale=1.0):
    v = [scale * r[key] for r in rows]
    return round(st.mean(v), 3), round(st.stdev(v), 3)
out = {"workload": w + "_seeds", "seeds": [r["seed"] for r in rows]}
for key, scale in (("nearml_test_acc", 100), ("pytorch_test_acc", 100), ("test_acc_diff_points", 1), ("nearml", 1),
                   ("pytorch", 1), ("ratio", 1), ("nearml_peak_rss_mb", 1), ("pytorch_peak_rss_mb", 1),
                   ("nearml_managed_bytes_per_step", 1)):
    m, sd = ms(key, scale)
    out[key + "_mean"], out[key + "_sd"] = m, sd
out["loadavg_1m"] = round(os.getloadavg()[0], 2)
print(json.dumps(out, separators=(",", ":")), flush=True)
PY
      fi
      ;;
    gpt)
      echo "== gpt (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      steps=()
      [ "$quick" = 1 ] && steps=(--warmup 1 --steps 10 --window 2)
      run_timed "$work/n.json" "$work/n.rss" dotnet "$dll" compare gpt --threads "$threads" \
        --corpus "$shared/data/tinyshakespeare.txt" "${steps[@]}"
      run_timed "$work/p.json" "$work/p.rss" "$py" "$ptdir/bench_gpt.py" --threads "$threads" \
        --corpus "$shared/data/tinyshakespeare.txt" "${steps[@]}" 2>"$work/p.err"
      merge gpt "tokens/s" "$work/n.json" "$work/n.rss" "$work/p.json" "$work/p.rss" gpt
      ;;
    *) echo "unknown workload '$w' (known: gemm, mlp, cnn, gpt)" >&2; exit 2 ;;
  esac
done
