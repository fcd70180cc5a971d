#!/usr/bin/env bash
# Build runner/base:bookworm: a minimal Debian 12 (bookworm) root file system
# made with debootstrap and imported into Docker, without any registry.
#
# Usage: images/base/build.sh [TAG]        (default tag: runner/base:bookworm)
# Environment:
#   DEBIAN_MIRROR  mirror for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

readonly image="${1:-runner/base:bookworm}"
readonly suite=bookworm
readonly mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly overlay="${here}/rootfs"

die() { printf 'base: error: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "debootstrap needs root: run 'sudo $0'"

"${here}/../../scripts/engine.sh"

if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and apt-get is not available"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-q -y -o DPkg::Lock::Timeout=300)
    if ! apt-cache policy debootstrap 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get "${apt_opts[@]}" update >/dev/null </dev/null
    fi
    apt-get "${apt_opts[@]}" install debootstrap >/dev/null </dev/null
fi

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/runner-base.XXXXXX")"
debootstrap_log="${rootfs}.log"
cleanup() {
    # debootstrap mounts proc/sys inside the target; never delete through a mount.
    local mnt
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v root="$rootfs/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system "$rootfs"
    rm -f "$debootstrap_log"
}
trap cleanup EXIT

if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$debootstrap_log" 2>&1 </dev/null; then
    tail -n 30 "$debootstrap_log" >&2
    die "debootstrap failed"
fi

# Drop caches, package lists and logs left by debootstrap.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/cache/apt/archives/partial/* \
       "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/var/log/*.log \
       "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/var/lib/dpkg/*-old
mkdir -p "$rootfs"/var/lib/apt/lists/partial
# Host files debootstrap copies in; Docker provides its own at run time.
rm -f "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
: >"$rootfs"/etc/machine-id 2>/dev/null || true

# APT/dpkg settings for containers (as in the official debian image) and the
# same Debian sources (bookworm, bookworm-updates, bookworm-security).
install -o 0 -g 0 -m 0644 "$overlay"/etc/apt/apt.conf.d/docker-* "$rootfs"/etc/apt/apt.conf.d/
install -o 0 -g 0 -m 0644 "$overlay"/etc/dpkg/dpkg.cfg.d/docker-apt-speedup "$rootfs"/etc/dpkg/dpkg.cfg.d/
install -o 0 -g 0 -m 0755 "$overlay"/usr/sbin/policy-rc.d "$rootfs"/usr/sbin/policy-rc.d
sed "s|^URIs: http://deb.debian.org/debian\$|URIs: ${mirror}|" \
    "$overlay"/etc/apt/sources.list.d/debian.sources >"$rootfs"/etc/apt/sources.list.d/debian.sources
chmod 0644 "$rootfs"/etc/apt/sources.list.d/debian.sources
rm -f "$rootfs"/etc/apt/sources.list

tar -C "$rootfs" --numeric-owner -c . \
    | docker import \
        --change 'CMD ["bash"]' \
        --change 'LABEL dev.runner.image=1' \
        - "$image" >/dev/null
