#!/usr/bin/env bash
# Build the vCenter simulator used by the vsphere tests into .cache/vcsim/vcsim.
# Idempotent: installs the Debian Go/govmomi packages when missing and rebuilds only when the
# Go source changed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$repo/tests/harness/vcsim"
out="$repo/.cache/vcsim"
packages=(golang-go golang-github-vmware-govmomi-dev)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi

mkdir -p "$out"
stamp="$(cat "$src"/*.go | sha256sum | cut -d' ' -f1)"
if [[ -x "$out/vcsim" && -f "$out/vcsim.sha256" && "$(cat "$out/vcsim.sha256")" == "$stamp" ]]; then
    exit 0
fi
(
    cd "$repo"
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$out/go-build" GOFLAGS= \
        go build -o "$out/vcsim.new" ./tests/harness/vcsim/
)
mv "$out/vcsim.new" "$out/vcsim"
echo "$stamp" > "$out/vcsim.sha256"
echo "built $out/vcsim"
