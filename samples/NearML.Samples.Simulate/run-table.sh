#!/bin/bash
# Reproduces the results tables of docs/low-communication.md. Run from the repository root:
#   dotnet build -c Release samples/NearML.Samples.Simulate && bash samples/NearML.Samples.Simulate/run-table.sh
# Each run appends one JSON line to $OUT (MLP) or $GPT_OUT (char-GPT); render the MLP table with
#   python3 samples/NearML.Samples.Simulate/table.py $OUT
set -e
# --plots none: no charts (their per-H-step evaluations would add to the measured wall time)
SIM="dotnet samples/NearML.Samples.Simulate/bin/Release/net10.0/NearML.Samples.Simulate.dll --plots none"
OUT=${OUT:-results.jsonl}
GPT_OUT=${GPT_OUT:-gpt.jsonl}
mlp() { $SIM --model mlp --hidden 64 --batch 16 --steps 1000 --parallel 2 --out "$OUT" "$@"; }
for N in 4 8; do
  mlp --workers $N --strategy ddp
  for H in 50 100 200 500; do for E in fp32 int8 int4; do mlp --workers $N --strategy diloco --h $H --encoding $E; done; done
  for E in fp32 int8; do mlp --workers $N --strategy streaming --h 100 --fragments 4 --overlap 1 --mixing 0.5 --encoding $E; done
done
mlp --workers 4 --strategy demo --demo-lr 0.001
mlp --workers 4 --strategy ddp --scenario skew
for H in 10 100; do mlp --workers 4 --strategy diloco --h $H --encoding int8 --scenario skew; done
mlp --workers 4 --strategy demo --demo-lr 0.001 --scenario skew
mlp --workers 4 --strategy diloco --h 100 --encoding int8 --scenario slow
mlp --workers 4 --strategy diloco --h 100 --encoding int8 --scenario dropout
gpt() { $SIM --model gpt --batch 8 --workers 4 --parallel 2 --out "$GPT_OUT" "$@"; }
gpt --steps 800 --strategy ddp
for H in 20 50 100; do gpt --steps 800 --strategy diloco --h $H --encoding int8; done
# Gap-closing runs ("Closing the gaps" in docs/low-communication.md), appended to $GAP_OUT:
GAP_OUT=${GAP_OUT:-gaps.jsonl}
T="--text ../shared/data/tinyshakespeare.txt"
gap() { $SIM --parallel 2 --out "$GAP_OUT" "$@"; }
gap --model cnn --batch 16 --steps 1000 --workers 4 --strategy ddp
gap --model cnn --batch 16 --steps 1000 --workers 4 --strategy diloco --h 200 --encoding int8
gap --model cnn --batch 16 --steps 1000 --workers 4 --strategy demo --demo-lr 0.002
gap --model mlp --hidden 64 --batch 16 --steps 1000 --workers 4 --strategy demo --demo-lr 0.002
gap --model mlp --hidden 64 --batch 16 --steps 4000 --workers 8 --strategy ddp
for H in 200 500; do gap --model mlp --hidden 64 --batch 16 --steps 4000 --workers 8 --strategy diloco --h $H --encoding int8; done
gpt4() { gap --model gpt $T --batch 8 --workers 4 "$@"; }
for LR in 0.4 0.5 1.0; do gpt4 --steps 800 --strategy diloco --h 100 --encoding int8 --outer-lr $LR; done
for LM in "0.7 0.5" "1.0 0.5" "1.0 0" "1.0 0.7" "1.5 0.5"; do set -- $LM
  gpt4 --steps 800 --strategy diloco --h 100 --encoding int8 --outer-lr $1 --outer-momentum $2; done
gap --model gpt $T --batch 8 --steps 800 --workers 1 --strategy ddp   # one worker alone (reference, 1/4 of the samples)
for H in 50 20; do gpt4 --steps 800 --strategy diloco --h $H --encoding int4; done
for S in 2000 4000; do
  gpt4 --steps $S --strategy ddp
  gpt4 --steps $S --strategy diloco --h 100 --encoding int8 --outer-lr 1.0 --outer-momentum 0.5
done
gpt4 --steps 2000 --strategy diloco --h 100 --encoding int8
# DeMo micro-benchmark (no training; DCT, top-k, all-gather, inverse per step):
for M in mlp cnn gpt; do $SIM --bench-demo --model $M --hidden 64 --workers 4 --steps 40; done
