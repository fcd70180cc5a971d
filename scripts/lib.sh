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
