#!/usr/bin/env bash
# The shells the completion tests drive: bash, zsh and fish.
#
#   scripts/shells.sh    install those that are missing (with apt, as root), then print each one's path
#
# Nothing is installed when all three are found on PATH.
set -euo pipefail

readonly script_name=shells usage_text=""
readonly shells=(bash zsh fish)
apt_install_options=(--no-install-recommends)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 0)) || usage

missing=()
for shell in "${shells[@]}"; do
    command -v "$shell" >/dev/null 2>&1 || missing+=("$shell")
done
if ((${#missing[@]})); then
    # tests running side by side must not start apt twice
    take_lock "${TMPDIR:-/tmp}/runner-shells.lock" 600
    install_packages "${missing[@]}"
fi
for shell in "${shells[@]}"; do
    command -v "$shell" || die "apt-get install ${shell} did not provide ${shell}"
done
