# Sourced by the scripts: installs Debian packages that are missing (apt-get; an index
# refresh only if the first attempt fails).
ensure_debian_packages() {
    local installed
    installed=$(dpkg-query -W -f='${Status}\n' "$@" 2>/dev/null | grep -c 'install ok installed' || true)
    if [ "$installed" -ne "$#" ]; then
        echo "installing $* from Debian" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "$@" >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
    fi
}
