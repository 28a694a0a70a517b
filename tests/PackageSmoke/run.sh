#!/usr/bin/env bash
# Packs every package under src/ (Release) into a temporary local feed, then builds and runs this folder's console
# project from a copy outside the repository (so the repository's Directory.*.props do not apply) against ONLY those
# .nupkg files. Exit code 0 when the packed worker earned a receipt from the packed coordinator.
# Usage: tests/PackageSmoke/run.sh [work-dir]   (default: a new temp dir; logs in <work-dir>/*.log)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-$(mktemp -d /tmp/nearml-package-smoke.XXXXXX)}"
mkdir -p "$work/feed" "$work/packages"
feed="$work/feed"

echo "packing into $feed"
dotnet pack "$repo/nuget/NearML.Packages.slnf" -c Release -o "$feed" -nologo -v q >"$work/pack.log" 2>&1 \
  || { echo "dotnet pack failed:"; tail -30 "$work/pack.log"; exit 1; }
# every package carries its icon, its README, a license expression, the repository (SourceLink) and a symbols package
for pkg in "$repo"/src/*/; do
  id=$(basename "$pkg")
  nupkg=$(ls "$feed/$id".[0-9]*.nupkg 2>/dev/null | head -1)
  [ -n "$nupkg" ] || { echo "$id: no .nupkg produced"; exit 1; }
  [ -f "${nupkg%.nupkg}.snupkg" ] || { echo "$id: no .snupkg produced"; exit 1; }
  files=$(unzip -Z1 "$nupkg")
  nuspec=$(unzip -p "$nupkg" "$id.nuspec")
  for f in icon.png README.md "lib/net10.0/$id.dll" "lib/net10.0/$id.xml"; do
    grep -qx "$f" <<<"$files" || { echo "$id: $f missing from $(basename "$nupkg")"; exit 1; }
  done
  for t in '<icon>icon.png</icon>' '<readme>README.md</readme>' '<license type="expression">MIT</license>' '<repository type="git" url="https://'; do
    grep -qF "$t" <<<"$nuspec" || { echo "$id: the nuspec lacks $t"; exit 1; }
  done
done
version=$(ls "$feed" | sed -nE 's/^NearML\.Hosting\.([0-9][^ ]*)\.nupkg$/\1/p' | head -1)
[ -n "$version" ] || { echo "no NearML.Hosting package in $feed"; ls "$feed"; exit 1; }

app="$work/app"
rm -rf "$app" && mkdir -p "$app"
cp "$here"/Program.cs "$here"/PackageSmoke.csproj "$here"/Directory.Build.props "$here"/Directory.Packages.props "$app"/
# The local feed for NearML.*, nuget.org for third-party packages; a private packages folder so a NearML package
# restored earlier can never be picked up instead of the one just packed (the global folder serves the rest offline).
cat >"$app/nuget.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config><add key="globalPackagesFolder" value="$work/packages" /></config>
  <fallbackPackageFolders><add key="global" value="${NUGET_PACKAGES:-$HOME/.nuget/packages}" /></fallbackPackageFolders>
  <packageSources>
    <clear />
    <add key="nearml-local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="nearml-local"><package pattern="NearML.*" /></packageSource>
    <packageSource key="nuget.org"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
CONFIG

echo "building the consumer against NearML $version"
dotnet build "$app/PackageSmoke.csproj" -c Release -p:NearMLVersion="$version" -nologo -v q >"$work/build.log" 2>&1 \
  || { echo "restore/build of the package consumer failed:"; tail -30 "$work/build.log"; exit 1; }
grep -q "NearML.Hosting/$version" "$app/obj/project.assets.json" \
  || { echo "the consumer did not resolve NearML.Hosting $version from the local feed"; exit 1; }
dotnet "$app/bin/Release/net10.0/PackageSmoke.dll" "$version"
