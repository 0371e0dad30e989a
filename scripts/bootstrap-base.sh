#!/usr/bin/env bash
# Build a Debian base image offline (mmdebstrap + docker import) under the exact name a
# template uses, for machines that cannot pull from Docker Hub. The result behaves like
# the official slim image: minbase packages, apt pointing at the configured mirror.
set -euo pipefail
image=$1
DOCKER=${BYOC_DOCKER:-docker}
command -v "$DOCKER" >/dev/null 2>&1 || DOCKER=/usr/bin/docker
case "$image" in
    debian:bookworm|debian:bookworm-slim|debian:12|debian:12-slim) suite=bookworm ;;
    *) echo "ERROR cannot bootstrap $image offline: only Debian bookworm bases can be;" \
            "pull it on a connected machine and 'docker load' it here" >&2; exit 1 ;;
esac
if ! command -v mmdebstrap >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null
fi
# The mirror this machine's apt already uses (deb822 or one-line sources).
mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ \
         2>/dev/null | grep -v security | head -1 | awk '{print $2}')
mirror=${mirror:-http://deb.debian.org/debian}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "==> mmdebstrap $suite from $mirror"
mmdebstrap --quiet --variant=minbase "$suite" "$tmp/rootfs.tar" "$mirror"
"$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "bootstrapped offline by byoc (mmdebstrap $suite)" \
    "$tmp/rootfs.tar" "$image" >/dev/null
echo "==> imported $image"
