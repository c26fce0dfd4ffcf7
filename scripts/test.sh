#!/usr/bin/env bash
# Runs every test of the project. On a fresh machine it first installs what the build and
# the tests need besides the project's own binaries: Debian's podman, runc and static busybox
# (the workload tests run real containers built from busybox), etcd (the storage tests start
# their own members), haproxy, Prometheus (it scrapes the hub's metrics), protoc (the etcd
# client's build compiles etcd's protobuf definitions), dpkg-dev (the agent's .deb is built
# and installed), systemd's systemd-analyze (the units are verified), the Python
# `kubernetes` client and the kopf operator framework (PyPI). The real kubectl binaries
# (kubectl.1.27 ... kubectl.1.33) are expected on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/debian.sh
ensure_debian_packages make podman runc busybox-static protobuf-compiler etcd-server etcd-client haproxy prometheus dpkg-dev systemd

if ! python3 -c 'import kubernetes' 2>/dev/null; then
    echo "installing the Python kubernetes client" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'kubernetes>=31'
fi
if ! python3 -c 'import kopf' 2>/dev/null; then
    echo "installing kopf" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'kopf==1.45.*'
fi

# Two cores: build once, then run the suites; integration tests start their own hubs.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads=2
