#!/usr/bin/env bash
# A container registry on this machine, for the tests that pull an image the way a user's machine does.
#
#   scripts/registry.sh install   install Debian's docker-registry if it is missing; prints its path last
#
# The tests start the registry themselves on 127.0.0.1 with a storage folder of their own, and stop it:
# an engine pulls from a registry on a loopback address over plain HTTP without being told to.
set -euo pipefail

readonly script_name=registry usage_text="install"
readonly lock_file=/run/runner-registry/lock
apt_install_options=(--no-install-recommends)
# the package's own service would serve on port 5000: only the files are installed
apt_wrapper=with_no_service_start
lock_fd=""
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

registry_path() {
    command -v docker-registry 2>/dev/null
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
install)
    if ! registry_path >/dev/null; then
        [[ "$(id -u)" -eq 0 ]] || die "docker-registry is missing, and installing it needs root"
        take_lock "$lock_file" 600
        if ! registry_path >/dev/null; then
            install_packages docker-registry
        fi
    fi
    registry_path || die "apt-get install docker-registry did not provide docker-registry"
    ;;
*)
    usage
    ;;
esac
