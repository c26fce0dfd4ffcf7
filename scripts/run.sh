#!/usr/bin/env bash
# Builds and starts the hub with everything on this machine (`hub-api start --all-in-one`,
# data in .faros/). Extra arguments go to `hub-api start`. On a fresh machine it first
# installs protoc (Debian's protobuf-compiler), which the etcd client's build needs, and make,
# which builds the hub's allocator (jemalloc).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/debian.sh
command -v protoc >/dev/null || ensure_debian_packages protobuf-compiler
command -v make >/dev/null || ensure_debian_packages make
exec cargo run --release -p hub-api -- start --all-in-one "$@"
