#!/usr/bin/env bash
# Packs kubectl-faros for krew: one archive per platform, and the plugin manifest naming
# them (deploy/krew/faros.yaml with a `platforms` entry per archive):
#
#   cargo build --release -p kubectl-faros
#   scripts/package-krew.sh URL linux/amd64=target/release/kubectl-faros [OS/ARCH=BINARY...]
#
# URL is where the archives will be downloaded from (the release's directory). Writes
# kubectl-faros_v<version>_<os>_<arch>.tar.gz and faros.yaml to OUT_DIR (default
# target/krew) and prints the manifest's path. Each archive holds the binary and LICENSE.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { echo "usage: $0 URL OS/ARCH=BINARY..." >&2; exit 2; }
url=${1%/}
shift
out=${OUT_DIR:-target/krew}
version=$(sed -n 's/^  version: v\(.*\)$/\1/p' deploy/krew/faros.yaml)
[ -n "$version" ] || { echo "no spec.version in deploy/krew/faros.yaml" >&2; exit 1; }

mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
manifest=$out/faros.yaml
cp deploy/krew/faros.yaml "$manifest.tmp"
for pair in "$@"; do
    platform=${pair%%=*}
    binary=${pair#*=}
    os=${platform%/*}
    arch=${platform#*/}
    [ "$platform" != "$pair" ] && [ -n "$os" ] && [ -n "$arch" ] && [ "$os/$arch" = "$platform" ] ||
        { echo "expected OS/ARCH=BINARY, got $pair" >&2; exit 2; }
    [ -x "$binary" ] || { echo "no executable at $binary" >&2; exit 1; }
    archive=kubectl-faros_v${version}_${os}_${arch}.tar.gz
    rm -rf "$stage/files" && mkdir "$stage/files"
    install -m 0755 "$binary" "$stage/files/kubectl-faros"
    install -m 0644 LICENSE "$stage/files/LICENSE"
    # Same input, same archive: fixed owner, order and time.
    tar -C "$stage/files" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf - \
        kubectl-faros LICENSE | gzip -n >"$out/$archive"
    sha=$(sha256sum "$out/$archive" | cut -d' ' -f1)
    cat >>"$manifest.tmp" <<ENTRY
  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $url/$archive
    sha256: $sha
    files:
    - from: kubectl-faros
      to: .
    - from: LICENSE
      to: .
    bin: kubectl-faros
ENTRY
done
mv "$manifest.tmp" "$manifest"
echo "$manifest"
