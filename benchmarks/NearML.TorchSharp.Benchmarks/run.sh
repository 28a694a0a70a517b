#!/usr/bin/env bash
# Adapter-overhead benchmark of NearML.TorchSharp (docs/performance.md, "TorchSharp adapter overhead"): builds on the
# host, runs inside the Debian 13 root (LibTorch 2.10 needs GLIBCXX_3.4.32). Usage: benchmarks/NearML.TorchSharp.Benchmarks/run.sh [--steps N] [--threads T]
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build benchmarks/NearML.TorchSharp.Benchmarks -c Release -v q -nologo >/dev/null
dll=$(ls benchmarks/NearML.TorchSharp.Benchmarks/bin/Release/net10.0/*/NearML.TorchSharp.Benchmarks.dll | head -1)
exec .ci/in-trixie dotnet "$dll" "$@"
