#!/usr/bin/env bash
# Prepare this host to run containers without a Docker engine or a registry (run as root):
# podman + runc from Debian, a containers.conf podman can use here, and the local base image
# (a minimal Debian bookworm with python3, made with debootstrap) tagged as BASE_IMAGE.
# Idempotent: every step is skipped when already done.
set -euo pipefail
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-py:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap
fi

# runc: the default runtime (crun) is not usable here; ulimits within this host's hard limits.
conf=/etc/containers/containers.conf
want="$(cat <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
)"
if [ ! -f "$conf" ] || ! grep -q 'runtime = "runc"' "$conf"; then
    mkdir -p /etc/containers
    [ -f "$conf" ] && cp "$conf" "$conf.before-tradebus"
    printf '%s\n' "$want" > "$conf"
fi

if ! podman image exists "$BASE_IMAGE"; then
    rootfs="$(mktemp -d /var/tmp/tradebus-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$MIRROR" >/dev/null
    # What a container never reads: apt's caches, documentation, manuals, translations (also for
    # packages installed later: the dpkg excludes below), glibc's charset converters (Python has
    # its own codecs) and the stdlib's tests, 2to3 and pydoc data.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/usr/lib/x86_64-linux-gnu/gconv "$rootfs"/usr/lib/python3.11/lib2to3 "$rootfs"/usr/lib/python3.11/pydoc_data \
        "$rootfs"/usr/lib/python3.11/test "$rootfs"/usr/lib/python3.11/idlelib
    printf 'path-exclude=/usr/share/%s/*\n' doc man info locale > "$rootfs"/etc/dpkg/dpkg.cfg.d/01-tradebus-slim
    # ENV=PATH: `podman kube play` does not add a default PATH the way `podman run` does.
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE_IMAGE" >/dev/null
    echo "base image $BASE_IMAGE made from Debian bookworm"
fi
