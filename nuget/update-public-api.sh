#!/usr/bin/env bash
# Regenerates every package's PublicAPI.Unshipped.txt from the code (Microsoft.CodeAnalysis.PublicApiAnalyzers' own code
# fix, applied by `dotnet format`). Run it after changing a public API on purpose, then review the diff: it is the API change.
# Usage: nuget/update-public-api.sh [src/NearML.X ...]   (default: every project under src/)
set -euo pipefail
cd "$(dirname "$0")/.."
projects=("$@")
[ ${#projects[@]} -gt 0 ] || projects=(src/*/)
for d in "${projects[@]}"; do
  d="${d%/}"
  csproj=$(ls "$d"/*.csproj)
  [ -f "$d/PublicAPI.Shipped.txt" ] || printf '#nullable enable\n' > "$d/PublicAPI.Shipped.txt"
  printf '#nullable enable\n' > "$d/PublicAPI.Unshipped.txt"
  dotnet format analyzers "$csproj" --diagnostics RS0016 --severity warn -v q
  # keep the file sorted (the analyzer does not care about order; a sorted file diffs well)
  { head -1 "$d/PublicAPI.Unshipped.txt"; tail -n +2 "$d/PublicAPI.Unshipped.txt" | LC_ALL=C sort -u; } > "$d/PublicAPI.Unshipped.txt.tmp"
  mv "$d/PublicAPI.Unshipped.txt.tmp" "$d/PublicAPI.Unshipped.txt"
  echo "$d: $(($(wc -l < "$d/PublicAPI.Unshipped.txt") - 1)) public API lines"
done
