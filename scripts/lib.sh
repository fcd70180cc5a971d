# shellcheck shell=bash disable=SC2154  # the sourcing script sets script_name, usage_text and the apt options
# Helpers shared by the scripts that start engines and services for the tests. Source it after setting
# `script_name` (the prefix of every message) and `usage_text` (the arguments the script takes).

log() { printf '%s: %s\n' "$script_name" "$*" >&2; }
die() { printf '%s: error: %s\n' "$script_name" "$*" >&2; exit 1; }

usage() {
    printf 'usage: %s %s\n' "$0" "$usage_text" >&2
    exit 2
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -q -y \
        -o DPkg::Lock::Timeout=300 "$@" </dev/null
}

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# install_packages PKG...: install those that are missing with apt, refreshing the package lists only
# when one of them has no candidate yet. Extra apt-get arguments go in the array `apt_install_options`,
# and a command to wrap apt-get in (e.g. one that stops services from starting) in `apt_wrapper`.
install_packages() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ "$(id -u)" -eq 0 ]] || die "${missing[*]} missing, and installing needs root"
    command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and apt-get is not available"
    for p in "${missing[@]}"; do
        if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            apt_get update >/dev/null
            break
        fi
    done
    log "installing ${missing[*]}"
    ${apt_wrapper:-} apt_get install "${apt_install_options[@]}" "${missing[@]}" >/dev/null
}

# Run "$@" with /usr/sbin/policy-rc.d forbidding service starts, unless one is already there.
with_no_service_start() {
    local policy=/usr/sbin/policy-rc.d rc=0
    if [[ -e "$policy" ]]; then
        "$@" || rc=$?
        return "$rc"
    fi
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    "$@" || rc=$?
    rm -f "$policy"
    trap - EXIT
    return "$rc"
}

# take_lock FILE SECONDS: serialise start and stop, since tests and CI may call a script at the same time.
# The lock is held on a file descriptor kept in `lock_fd` until the script exits.
take_lock() {
    mkdir -p "$(dirname "$1")"
    exec {lock_fd}>"$1"
    flock -w "$2" "$lock_fd" || die "$1 is held by another $0 for $2 s"
}

# Close every descriptor above stderr, so a daemon started from here keeps no lock or pipe of ours open.
close_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd="${fd##*/}"
        if ((fd > 2)); then
            eval "exec ${fd}>&-" 2>/dev/null || true
        fi
    done
}

# alive PID: the process exists and is not a zombie (an exited child stays one until its parent exits).
alive() {
    local process_state  # not `state`: a script may hold a readonly of that name
    process_state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$process_state" && "$process_state" != Z ]]
}

# ensure_podman_image IMAGE DOCKERFILE_FUNCTION: build IMAGE with Podman from the Dockerfile the function
# prints, unless it exists and was built from the same text (its hash is the label dev.runner.source-hash).
ensure_podman_image() {
    local target="$1" dockerfile="$2" hash have context started
    hash="$("$dockerfile" | sha256sum | cut -c1-16)"
    have="$(podman image inspect -f '{{index .Labels "dev.runner.source-hash"}}' "$target" 2>/dev/null || true)"
    [[ "$have" == "$hash" ]] && return 0
    log "building ${target}"
    started=$SECONDS
    context="$(mktemp -d "${TMPDIR:-/tmp}/runner-image.XXXXXX")"
    "$dockerfile" >"${context}/Dockerfile"
    if ! podman build -q --label "dev.runner.source-hash=${hash}" -t "$target" "$context" \
        >"${context}/build.log" 2>&1 </dev/null; then
        tail -n 30 "${context}/build.log" >&2
        rm -rf "$context"
        die "building ${target} failed"
    fi
    rm -rf "$context"
    log "built ${target} in $((SECONDS - started))s"
}
