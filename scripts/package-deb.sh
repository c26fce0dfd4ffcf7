#!/usr/bin/env bash
# Builds the edge agent's Debian package from a built binary:
#
#   cargo build --profile release-edge -p edge-agent
#   scripts/package-deb.sh [BINARY] [OUT_DIR]
#
# BINARY defaults to target/release-edge/edge-agent, OUT_DIR to target/debian; the package's
# path is printed; DEB_MAINTAINER sets its Maintainer field and DEB_COMPRESSION its
# compression (xz, gzip, zstd or none; default xz). It installs /usr/bin/edge-agent
# and the systemd unit of config/ (not enabled: the device needs its registration kubeconfig
# first, see the unit's header).
# Needs dpkg-dev (dpkg-shlibdeps works out the shared-library dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:-target/release-edge/edge-agent}
out=${2:-target/debian}
package=faros-edge-agent
# The workspace's version, from [workspace.package].
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-Faros developers <faros@example.org>}
[ -x "$binary" ] || { echo "no executable at $binary (build it first)" >&2; exit 1; }
[ -n "$version" ] || { echo "no version in Cargo.toml's [workspace.package]" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/debian/$package
install -D -m 0755 "$binary" "$root/usr/bin/edge-agent"
install -d -m 0755 "$root/lib/systemd/system" "$root/DEBIAN"
sed 's|^ExecStart=/usr/local/bin/edge-agent|ExecStart=/usr/bin/edge-agent|' config/edge-agent.service \
    >"$root/lib/systemd/system/edge-agent.service"
chmod 0644 "$root/lib/systemd/system/edge-agent.service"
install -D -m 0644 LICENSE "$root/usr/share/doc/$package/copyright"

# dpkg-shlibdeps wants a debian/control beside the package directory; it reads nothing from
# it. Its warning that the binary is not in a package directory is wrong here (it is).
touch "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -e "debian/$package/usr/bin/edge-agent" 2>"$work/shlibdeps.log" |
    sed -n 's/^shlibs:Depends=//p')
grep -v "installed in their package's directory" "$work/shlibdeps.log" >&2 || true
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat >"$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Depends: $depends
Recommends: podman
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: Faros edge agent
 The agent that runs on each device of a Faros fleet: it registers the device with the
 hub, reports it, heartbeats, and runs the workloads placed on it (podman containers or
 supervised processes), keeping them running while the hub is unreachable.
EOF

# The maintainer scripts touch the running system only when dpkg installs into it (not into
# another root, DPKG_ROOT) and systemd runs it. The unit is not started: it needs
# /etc/faros-agent/bootstrap.kubeconfig first.
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # An upgrade restarts an agent that runs, so it runs the new binary.
    if systemctl is-active --quiet edge-agent.service; then
        systemctl restart edge-agent.service || true
    fi
fi
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl disable --now edge-agent.service || true
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
# Purging forgets the device's identity: its credential and live state.
if [ "$1" = purge ]; then
    rm -rf "$DPKG_ROOT/var/lib/faros-agent" "$DPKG_ROOT/var/lib/private/faros-agent"
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/${package}_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
