#!/usr/bin/env bash
# Build runner/busybox:latest: a tiny image holding only Debian's statically
# linked busybox (package busybox-static), imported into Docker without any
# registry.
#
# Usage: images/busybox/build.sh [TAG]      (default tag: runner/busybox:latest)
set -euo pipefail

readonly image="${1:-runner/busybox:latest}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here

die() { printf 'busybox: error: %s\n' "$*" >&2; exit 1; }

"${here}/../../scripts/engine.sh"

work="$(mktemp -d "${TMPDIR:-/tmp}/runner-busybox.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/deb" "$work/pkg" "$work/root"

download() {
    (cd "$work/deb" && apt-get -q -o APT::Sandbox::User=root download busybox-static) \
        >/dev/null 2>&1 </dev/null
}
if ! download; then
    # Package lists may be missing (e.g. a fresh container): refresh them once.
    [[ "$(id -u)" -eq 0 ]] || die "cannot download busybox-static; run 'sudo apt-get update' first"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 update >/dev/null </dev/null
    download || die "apt-get download busybox-static failed"
fi

dpkg -x "$work"/deb/busybox-static_*.deb "$work/pkg"
[[ -x "$work/pkg/bin/busybox" ]] || die "busybox-static has no bin/busybox"

root="$work/root"
mkdir -p "$root"/{bin,etc,root,tmp,var,proc,sys,dev}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$work/pkg/bin/busybox" "$root/bin/busybox"

# One symlink in /bin per applet (this includes /bin/sh).
while read -r applet; do
    [[ -n "$applet" && "$applet" != busybox ]] || continue
    ln -sf busybox "$root/bin/$applet"
done < <("$root/bin/busybox" --list)
[[ -L "$root/bin/sh" ]] || ln -s busybox "$root/bin/sh"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"

tar -C "$root" --numeric-owner --owner=0 --group=0 -c . \
    | docker import \
        --change 'CMD ["sh"]' \
        --change 'LABEL dev.runner.image=1' \
        - "$image" >/dev/null
