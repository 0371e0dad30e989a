#!/usr/bin/env bash
# Build a Debian base image offline (mmdebstrap + docker import) for machines that cannot
# pull from Docker Hub. The result behaves like the official slim image: minbase packages,
# apt pointing at the Debian mirror this machine's apt uses.
#
#   scripts/bootstrap-base.sh IMAGE [--as NAME:TAG]   build IMAGE's suite, import it as
#                                                      IMAGE (or NAME:TAG, for tests)
#   scripts/bootstrap-base.sh --print-mirror [ROOT]    print the mirror only (ROOT: tests)
#
# Any failure prints one ERROR line saying which step failed and a TIP, and exits non-zero.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

step="starting"
tip="run it again with 'bash -x scripts/bootstrap-base.sh ...' to see each command"
fail() {  # fail MESSAGE TIP: the one ERROR line and its TIP, then exit 1
    printf 'ERROR bootstrap-base: %s\nTIP   %s\n' "$1" "$2" >&2
    exit 1
}
trap 'rc=$?; trap - ERR; fail "$step failed (exit $rc)" "$tip"' ERR

find_mirror() {  # the Debian archive URI among the sources apt reads (byoc/aptsources.py)
    local out
    if ! out=$(PYTHONPATH="$repo" python3 -m byoc.aptsources "$@" 2>&1); then
        fail "cannot find the Debian mirror: ${out#ERROR }" \
             "add a Debian archive entry to /etc/apt/sources.list.d/debian.sources, or set BYOC_DEBIAN_MIRROR=http://deb.debian.org/debian"
    fi
    printf '%s\n' "$out"
}

if [ "${1:-}" = --print-mirror ]; then
    shift
    find_mirror "$@"
    exit 0
fi

[ $# -ge 1 ] || fail "no image given" "usage: scripts/bootstrap-base.sh IMAGE [--as NAME:TAG]"
image=$1
shift
target=$image
while [ $# -gt 0 ]; do
    case "$1" in
        --as) [ $# -ge 2 ] || fail "--as needs NAME:TAG" "e.g. --as byoc-test/base:1"
              target=$2; shift 2 ;;
        *) fail "unknown argument $1" "usage: scripts/bootstrap-base.sh IMAGE [--as NAME:TAG]" ;;
    esac
done
case "$image" in
    debian:bookworm|debian:bookworm-slim|debian:12|debian:12-slim) suite=bookworm ;;
    *) fail "cannot bootstrap $image offline: only Debian bookworm bases can be" \
            "pull $image on a connected machine, then 'docker save' it there and 'docker load' it here" ;;
esac

DOCKER=${BYOC_DOCKER:-docker}
command -v "$DOCKER" >/dev/null 2>&1 || DOCKER=/usr/bin/docker
step="checking the Docker engine ($DOCKER info)"
tip="start Docker first: make setup does it on Debian"
"$DOCKER" info >/dev/null 2>&1

if ! command -v mmdebstrap >/dev/null 2>&1; then
    step="installing mmdebstrap (apt-get install mmdebstrap)"
    tip="install it yourself as root: apt-get install mmdebstrap"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null
fi

mirror=${BYOC_DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && ! mirror=$(find_mirror); then
    exit 1  # find_mirror printed the ERROR and TIP
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step="mmdebstrap $suite from $mirror"
tip="check that $mirror answers (apt-get update does), or set BYOC_DEBIAN_MIRROR to another Debian mirror"
echo "==> mmdebstrap $suite from $mirror"
mmdebstrap --quiet --variant=minbase "$suite" "$tmp/rootfs.tar" "$mirror"
step="docker import as $target"
tip="check the Docker engine's disk space (docker system df) and that $target is a valid NAME:TAG"
"$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "bootstrapped offline by byoc (mmdebstrap $suite from $mirror)" \
    "$tmp/rootfs.tar" "$target" >/dev/null
echo "==> imported $target"
