#!/bin/bash
# Reproduces the results table of docs/low-communication.md. Run from the repository root:
#   dotnet build -c Release samples/NearML.Samples.Simulate && bash samples/NearML.Samples.Simulate/run-table.sh
# Each run appends one JSON line to $OUT; render the table with samples/NearML.Samples.Simulate/table.py $OUT.
set -e
SIM="dotnet samples/NearML.Samples.Simulate/bin/Release/net10.0/NearML.Samples.Simulate.dll"
OUT=${OUT:-results.jsonl}
N=${N:-4}
COMMON="--model mlp --hidden 64 --batch 16 --steps 1000 --workers $N --parallel 2 --out $OUT"
$SIM --strategy ddp $COMMON
$SIM --strategy demo --demo-lr 0.001 $COMMON
for H in 50 100 500; do for E in fp32 int8 int4; do $SIM --strategy diloco --h $H --encoding $E $COMMON; done; done
for E in fp32 int8; do $SIM --strategy streaming --h 100 --fragments 4 --overlap 1 --mixing 0.5 --encoding $E $COMMON; done
$SIM --strategy ddp --scenario skew $COMMON
$SIM --strategy diloco --h 100 --encoding int8 --scenario skew $COMMON
$SIM --strategy diloco --h 100 --encoding int8 --scenario slow $COMMON
$SIM --strategy diloco --h 100 --encoding int8 --scenario dropout $COMMON
