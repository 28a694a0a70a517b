#!/usr/bin/env bash
# NearML's managed engine vs LibTorch 2.10 (TorchSharp-cpu, run inside the Debian 13 root: .ci/in-trixie) vs PyTorch
# (Debian's python3-torch on OpenBLAS), side by side, on the workloads of compare-pytorch.sh: every GEMM shape of the
# suite (GemmShapes.cs), Fashion-MNIST MLP and CNN training, char-level GPT training.
#
# Every (workload, side) runs --runs times in its own process; the order of the sides rotates run by run (N L P,
# L P N, P N L, ...) so that noise from the rest of the machine hits every side; the figure reported is the median over
# the runs of each run's own figure (GEMM: median of --repeats timed repeats; training: median of the throughput
# windows). Peak RSS is each process's Maximum resident set size from /usr/bin/time -v (for GEMM: the process that ran
# the whole shape suite). For LibTorch, /usr/bin/time wraps .ci/in-trixie; its rusage covers the dotnet process inside.
#
# --load N adds a competing-load mode: every (workload, side, run) is measured twice, quiet and while N busy-loop
# processes (bash `while :; do :; done`) keep the cores busy; quiet and loaded alternate order run by run. The summary
# gives each side's loaded/quiet ratio ("degradation"). A busy loop is started right before and killed (by its pid)
# right after each loaded measurement.
#
# usage: benchmarks/compare-all.sh [--threads N] [--workloads gemm,mlp,cnn,gpt] [--runs R] [--only SUBSTR]
#                                  [--repeats R] [--min-time S] [--quick] [--epochs E] [--load N]
#                                  [--sides nearml,libtorch,pytorch[,libtorch_passive,nearml_active]] [--raw FILE] [--markdown FILE]
#                                  [--isa avx2] [--no-build]
#   --threads     compute threads of every side (default 2)
#   --runs        processes per (workload, side) (default 3; the median is reported)
#   --only        GEMM shape-name filter: comma list of substrings (a shape runs if its name contains one)
#   --repeats/--min-time   GEMM: timed repeats per shape and seconds per repeat (default 3 / 0.3)
#   --quick       MLP and CNN 1 epoch, GPT 1 warm-up + 10 timed steps (windows of 2): not the recipe, say so
#   --epochs E    MLP and CNN epochs (default: the recipe's 5 and 3)
#   --load N      also measure every side under N busy-loop processes (competing-load mode)
#   --sides       which sides; libtorch_passive = LibTorch with OMP_WAIT_POLICY=PASSIVE (libgomp threads sleep);
#                 nearml_active = NearML with KernelThreads.WaitPolicy = Active (always spin: the pool before issue 17)
#   --raw FILE    append every raw JSON line of every process (tagged with side, run, condition, RSS) to FILE
#   --markdown F  write the summary tables (markdown) to F as well as to stderr
#   --isa avx2    cap every engine at AVX2+FMA, to measure an AVX2-only machine (Zen 3, Haswell..Skylake client) on an
#                 AVX-512 one: NearML NEARML_ISA=avx2; LibTorch ATEN_CPU_CAPABILITY=avx2 and MKL_ENABLE_INSTRUCTIONS=AVX2;
#                 PyTorch ATEN_CPU_CAPABILITY=avx2 and OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 kernels)
# stdout: one summary JSON line per workload / GEMM shape (and condition). Progress and tool output go to stderr.
# The PyTorch side must run on an optimised BLAS (apt-get install python3-torch libopenblas0-openmp); a run on the
# netlib reference BLAS is marked "pytorch_valid":false.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
threads=2
workloads=gemm,mlp,cnn,gpt
runs=3
only=""
repeats=3
min_time=0.3
quick=0
epochs=""
load=0
sides=nearml,libtorch,pytorch
raw=""
markdown=""
build=1
isa=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --min-time) min_time="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --epochs) epochs="$2"; shift 2 ;;
    --load) load="$2"; shift 2 ;;
    --sides) sides="$2"; shift 2 ;;
    --raw) raw="$2"; shift 2 ;;
    --markdown) markdown="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --isa) isa="$2"; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

# --isa avx2: each engine's own switch for its AVX2 kernels (NearML's is read by KernelThreads; the others by ATen,
# MKL and OpenBLAS at load); exported, so every side's process and .ci/in-trixie (which passes them on) see them
case "$isa" in
  "") ;;
  avx2) export NEARML_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell ;;
  *) echo "unknown --isa '$isa' (known: avx2)" >&2; exit 2 ;;
esac

shared=""
for candidate in "${NEARML_SHARED:-}" "$repo/../shared" "/work/shared"; do
  if [ -n "$candidate" ] && [ -f "$candidate/bench/pytorch/bench_gemm.py" ]; then shared="$(cd "$candidate" && pwd)"; break; fi
done
[ -n "$shared" ] || { echo "cannot find the shared folder with bench/pytorch (set NEARML_SHARED)" >&2; exit 2; }
ptdir="$shared/bench/pytorch"
py=/usr/bin/python3
[ -x /usr/bin/time ] || { echo "/usr/bin/time is required (apt-get install time)" >&2; exit 2; }
IFS=',' read -r -a side_list <<<"$sides"
IFS=',' read -r -a wl <<<"$workloads"
for s in "${side_list[@]}"; do
  case "$s" in nearml|nearml_active|libtorch|libtorch_passive|pytorch) ;; *) echo "unknown side '$s'" >&2; exit 2 ;; esac
done
for w in "${wl[@]}"; do
  case "$w" in gemm|mlp|cnn|gpt) ;; *) echo "unknown workload '$w' (known: gemm, mlp, cnn, gpt)" >&2; exit 2 ;; esac
done
if [[ ",$sides," == *",pytorch,"* ]] && ! "$py" -c 'import torch' 2>/dev/null; then
  echo "the PyTorch side needs Debian's python3-torch (apt-get install -y python3-torch libopenblas0-openmp)" >&2; exit 2
fi

if [ "$build" = 1 ]; then
  echo "building NearML.Benchmarks and NearML.TorchSharp.Benchmarks (Release)..." >&2
  dotnet build -c Release "$repo/benchmarks/NearML.Benchmarks" -v q -nologo >&2
  if [[ ",$sides," == *",libtorch"* ]]; then
    dotnet build -c Release "$repo/benchmarks/NearML.TorchSharp.Benchmarks" -v q -nologo >&2
  fi
fi
ndll="$repo/benchmarks/NearML.Benchmarks/bin/Release/net10.0/NearML.Benchmarks.dll"
ldll=$(ls "$repo"/benchmarks/NearML.TorchSharp.Benchmarks/bin/Release/net10.0/*/NearML.TorchSharp.Benchmarks.dll 2>/dev/null | head -1 || true)

# the work folder is under /tmp, which .ci/in-trixie binds into the Debian 13 root (so the corpus is visible there)
work="$(mktemp -d /tmp/nearml-compare-all.XXXXXX)"
busy_pids=()
stop_load() {
  local p
  for p in "${busy_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  busy_pids=()
}
start_load() {
  local i
  for ((i = 0; i < load; i++)); do bash -c 'while :; do :; done' & busy_pids+=($!); done
  sleep 1
}
trap 'stop_load; rm -rf "$work"' EXIT
cp "$shared/data/tinyshakespeare.txt" "$work/corpus.txt"

# side_cmd SIDE WORKLOAD: fills the array `cmd` with the command line of that side for that workload
side_cmd() {
  local side="$1" w="$2" args=()
  case "$w" in
    gemm) args=(--threads "$threads" --repeats "$repeats" --min-time "$min_time" ${only:+--only "$only"}) ;;
    mlp|cnn)
      args=(--threads "$threads")
      if [ -n "$epochs" ]; then args+=(--epochs "$epochs"); elif [ "$quick" = 1 ]; then args+=(--epochs 1); fi ;;
    gpt)
      args=(--threads "$threads" --corpus "$work/corpus.txt")
      [ "$quick" = 1 ] && args+=(--warmup 1 --steps 10 --window 2) ;;
  esac
  case "$side" in
    nearml) cmd=(dotnet "$ndll" compare "$w" "${args[@]}") ;;
    nearml_active) cmd=(dotnet "$ndll" compare "$w" "${args[@]}" --wait-policy active) ;;
    libtorch) cmd=(env -u OMP_WAIT_POLICY "$repo/.ci/in-trixie" dotnet "$ldll" compare "$w" "${args[@]}") ;;
    libtorch_passive) cmd=(env OMP_WAIT_POLICY=PASSIVE "$repo/.ci/in-trixie" dotnet "$ldll" compare "$w" "${args[@]}") ;;
    pytorch)
      case "$w" in
        # bench_gemm.py itself, with its shape lists filtered by the comma list of --only (its own --only takes one substring)
        gemm) cmd=("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import bench_gemm as b
keys = [k for k in sys.argv[2].split(",") if k]
keep = lambda s: not keys or any(k in s[0] for k in keys)
b.SQUARE = [s for s in b.SQUARE if keep(s)]; b.SKINNY = [s for s in b.SKINNY if keep(s)]
sys.argv = [b.__file__] + sys.argv[3:]; b.main()' "$ptdir" "$only" --no-onednn --threads "$threads" --repeats "$repeats" --min-time "$min_time") ;;
        *) cmd=("$py" "$ptdir/bench_$w.py" "${args[@]}") ;;
      esac ;;
  esac
}

# measure SIDE WORKLOAD RUN CONDITION: runs one process, keeps its stdout, stderr and /usr/bin/time report
measure() {
  local side="$1" w="$2" run="$3" cond="$4" base
  base="$work/$w.$side.$run.$cond"
  side_cmd "$side" "$w"
  echo "== $w $side run $run $cond (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  cut -d' ' -f1 /proc/loadavg >"$base.load"
  [ "$cond" = load ] && start_load
  if ! /usr/bin/time -v -o "$base.time" "${cmd[@]}" >"$base.out" 2>"$base.err"; then
    stop_load
    echo "$side $w failed; its stderr:" >&2; tail -20 "$base.err" >&2; exit 1
  fi
  [ "$cond" = load ] && stop_load
  tail -1 "$base.err" >&2 || true
}

conds=(quiet)
[ "$load" -gt 0 ] && conds=(quiet load)
for ((r = 1; r <= runs; r++)); do
  for w in "${wl[@]}"; do
    n=${#side_list[@]}
    for ((i = 0; i < n; i++)); do
      side="${side_list[$(((i + r - 1) % n))]}"
      if [ "${#conds[@]}" -eq 2 ] && [ $((r % 2)) -eq 0 ]; then order=(load quiet); else order=("${conds[@]}"); fi
      for cond in "${order[@]}"; do measure "$side" "$w" "$r" "$cond"; done
    done
  done
done

"$py" - "$work" "$threads" "$runs" "$sides" "$workloads" "$load" "${raw:-}" "${markdown:-}" "$quick" "${epochs:-}" <<'PY'
import glob, json, os, re, statistics as st, sys
work, threads, runs, sides, workloads, load, raw, markdown, quick, epochs = sys.argv[1:11]
sides = sides.split(","); workloads = workloads.split(","); load = int(load)
conds = ["quiet", "load"] if load > 0 else ["quiet"]

def proc_info(base):
    info = {}
    for line in open(base + ".time"):
        k, _, v = line.strip().rpartition(": ")
        if k == "Maximum resident set size (kbytes)": info["peak_rss_mb"] = round(int(v) / 1024, 1)
        elif k == "User time (seconds)": info["user_s"] = float(v)
        elif k == "System time (seconds)": info["sys_s"] = float(v)
        elif k.startswith("Elapsed (wall clock) time"):
            parts = [float(x) for x in v.split(":")]
            info["wall_s"] = round(sum(p * 60 ** i for i, p in enumerate(reversed(parts))), 2)
    info["loadavg_1m_start"] = float(open(base + ".load").read().strip())
    return info

def json_lines(path):
    out = []
    for l in open(path):
        l = l.strip()
        if l.startswith("{"):
            try: out.append(json.loads(l))
            except json.JSONDecodeError: pass
    return out

# rows[(key, cond)][side] = list of per-run dicts {value, rss, extra...}
rows = {}
raw_records = []
for base in sorted(glob.glob(os.path.join(work, "*.out"))):
    base = base[:-4]
    w, side, run, cond = os.path.basename(base).split(".")
    info = proc_info(base)
    lines = json_lines(base + ".out")
    for l in lines:
        raw_records.append({"side": side, "workload": w, "run": int(run), "condition": cond, "threads": int(threads),
                            **{"process_" + k: v for k, v in info.items()}, "data": l})
    def add(key, value, extra):
        rows.setdefault((key, cond), {}).setdefault(side, []).append({"value": value, "rss": info["peak_rss_mb"], **extra})
    if side == "pytorch":
        if not lines: continue
        p = lines[-1]
        provider = p.get("env", {}).get("blas_provider", "unknown")
        valid = provider in ("OpenBLAS", "Intel MKL", "BLIS")
        if w == "gemm":
            for row in p["results"]:
                add("gemm_" + row["name"], row["gflops"][threads]["median"], {"valid": valid, "blas": provider})
        elif w in ("mlp", "cnn"):
            add(w, p["samples_per_s"]["median"], {"acc": p["per_epoch"][-1]["test_acc"], "valid": valid, "blas": provider})
        else:
            add(w, p["tokens_per_s"]["median"], {"val_loss": p["loss"]["val_loss_final"], "valid": valid, "blas": provider})
    else:
        for l in lines:
            extra = {}
            if "test_acc" in l: extra["acc"] = l["test_acc"]
            if "val_loss_final" in l: extra["val_loss"] = l["val_loss_final"]
            if "managed_bytes_per_step" in l: extra["managed_bytes"] = l["managed_bytes_per_step"]
            if "managed_bytes_per_call" in l: extra["managed_bytes"] = l["managed_bytes_per_call"]
            add(l["workload"], l["value"], extra)

if raw:
    with open(raw, "a") as fh:
        for r in raw_records: fh.write(json.dumps(r, separators=(",", ":")) + "\n")

order = []
for w in workloads:
    if w == "gemm":
        names = [k for (k, c) in rows if k.startswith("gemm_") and c == "quiet"]
        # keep the suite's order as the NearML side printed it
        first = sorted(glob.glob(os.path.join(work, "gemm.*.1.quiet.out")))
        seen = []
        for f in first:
            for l in json_lines(f):
                if "workload" in l and l["workload"] not in seen: seen.append(l["workload"])
        order += [n for n in seen if n in names] + [n for n in sorted(names) if n not in seen]
    else:
        order.append(w)

def med(v): return round(st.median(v), 2) if v else None
unit = {"mlp": "samples/s", "cnn": "samples/s", "gpt": "tokens/s"}
summary = []
for key in order:
    for cond in conds:
        per = rows.get((key, cond), {})
        out = {"workload": key, "unit": unit.get(key, "GFLOP/s"), "condition": cond, "threads": int(threads)}
        for s in sides:
            vals = [x["value"] for x in per.get(s, [])]
            out[s] = med(vals)
            out[s + "_runs"] = [round(v, 2) for v in vals]
            out[s + "_peak_rss_mb"] = med([x["rss"] for x in per.get(s, [])])
            for extra in ("acc", "val_loss", "managed_bytes"):
                ev = [x[extra] for x in per.get(s, []) if extra in x]
                if ev: out[s + "_" + extra] = round(st.median(ev), 4)
            if s == "pytorch" and per.get(s):
                out["pytorch_blas"] = per[s][0]["blas"]; out["pytorch_valid"] = all(x["valid"] for x in per[s])
        for s in sides:
            if s != "nearml" and out.get("nearml") and out.get(s):
                out["nearml_over_" + s] = round(out["nearml"] / out[s], 3)
        if cond == "load":
            q = rows.get((key, "quiet"), {})
            for s in sides:
                qv = med([x["value"] for x in q.get(s, [])])
                if qv and out.get(s): out[s + "_loaded_over_quiet"] = round(out[s] / qv, 3)
        summary.append(out)
        print(json.dumps(out, separators=(",", ":")), flush=True)

names = {"nearml": "NearML", "nearml_active": "NearML (WaitPolicy Active)", "libtorch": "LibTorch 2.10", "libtorch_passive": "LibTorch 2.10 (OMP PASSIVE)", "pytorch": "PyTorch"}
others = [s for s in sides if s != "nearml"]
md = []
recipe = "quick (MLP/CNN 1 epoch, GPT 1+10 steps)" if quick == "1" else ("epochs %s" % epochs if epochs else "full recipe")
isa_note = ", every engine capped at AVX2 (NEARML_ISA=avx2, ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, OPENBLAS_CORETYPE=Haswell)" if os.environ.get("NEARML_ISA") == "avx2" else ""
md.append("threads %s, median of %s runs per side (sides rotated run by run), %s%s" % (threads, runs, recipe, isa_note))
md.append("")
def fmt(v, digits=1):
    return "—" if v is None else f"{v:,.{digits}f}"
hdr = "| workload | unit | " + " | ".join(names[s] for s in sides) + " | " + " | ".join("NearML / " + names[s] for s in others) + " | peak RSS MB (" + " / ".join(names[s] for s in sides) + ") |"
md.append(hdr)
md.append("|" + "---|" * 2 + "---:|" * (len(sides) + len(others)) + "---|")
for o in summary:
    if o["condition"] != "quiet": continue
    extra = ""
    if "nearml_acc" in o: extra = " (acc " + " / ".join(fmt(100 * o.get(s + "_acc", float("nan")), 1) if o.get(s + "_acc") is not None else "—" for s in sides) + " %)"
    if "nearml_val_loss" in o: extra = " (val loss " + " / ".join(fmt(o.get(s + "_val_loss"), 3) for s in sides) + ")"
    md.append("| %s%s | %s | %s | %s | %s |" % (o["workload"], extra, o["unit"],
        " | ".join(fmt(o[s], 1 if o["unit"] != "GFLOP/s" else 2) for s in sides),
        " | ".join(fmt(o.get("nearml_over_" + s), 2) + "×" if o.get("nearml_over_" + s) else "—" for s in others),
        " / ".join(fmt(o[s + "_peak_rss_mb"], 0) for s in sides)))
if load > 0:
    md.append("")
    md.append("Competing load: %d busy-loop processes; each side quiet vs loaded (loaded / quiet = degradation; 1.00 = none)" % load)
    md.append("")
    md.append("| workload | unit | " + " | ".join(names[s] + " quiet → loaded" for s in sides) + " | " + " | ".join(names[s] + " loaded/quiet" for s in sides) + " |")
    md.append("|" + "---|" * 2 + "---:|" * (2 * len(sides)) + "")
    for o in summary:
        if o["condition"] != "load": continue
        q = next(x for x in summary if x["workload"] == o["workload"] and x["condition"] == "quiet")
        md.append("| %s | %s | %s | %s |" % (o["workload"], o["unit"],
            " | ".join(fmt(q[s]) + " → " + fmt(o[s]) for s in sides),
            " | ".join(fmt(o.get(s + "_loaded_over_quiet"), 2) for s in sides)))
text = "\n".join(md) + "\n"
sys.stderr.write("\n" + text)
if markdown:
    with open(markdown, "w") as fh: fh.write(text)
PY
