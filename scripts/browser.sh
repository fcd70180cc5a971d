#!/usr/bin/env bash
# A headless browser for the tests that look at rendered pages (the HTML run report).
#
#   scripts/browser.sh install   install Debian's chromium (and a font for it) if `chromium` is not on
#                                PATH; prints the browser's path last
#   scripts/browser.sh path      print the browser's path, or fail if there is none
#
# Recommended packages are left out: the browser runs headless, and they would bring a desktop with it.
set -euo pipefail

readonly script_name=browser usage_text="install | path"
readonly lock_file=/run/runner-browser/lock
apt_install_options=(--no-install-recommends)
lock_fd=""
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

browser_path() {
    command -v chromium 2>/dev/null
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
install)
    if ! browser_path >/dev/null; then
        [[ "$(id -u)" -eq 0 ]] || die "chromium is missing, and installing it needs root"
        # Tests of several processes may ask at once; one installs, the others wait and find it there.
        take_lock "$lock_file" 600
        if ! browser_path >/dev/null; then
            install_packages chromium fonts-dejavu-core
        fi
    fi
    browser_path || die "apt-get install chromium did not provide chromium"
    ;;
path)
    browser_path || die "chromium is not installed (run scripts/browser.sh install)"
    ;;
*)
    usage
    ;;
esac
