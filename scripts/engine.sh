#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#
#   - exits 0 at once if `docker info` already answers;
#   - otherwise installs docker.io with apt if dockerd is missing,
#     starts dockerd in the background and waits until it answers.
#
# Environment:
#   ENGINE_WAIT  seconds to wait for the engine to answer (default 60)
set -euo pipefail

readonly wait_secs="${ENGINE_WAIT:-60}"

log() { printf 'engine: %s\n' "$*"; }
die() { printf 'engine: error: %s\n' "$*" >&2; exit 1; }

engine_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    timeout 5 docker info >/dev/null 2>&1 </dev/null
}

# Works without procps (pgrep), which minimal systems lack.
dockerd_running() {
    grep -qsx dockerd /proc/[0-9]*/comm
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -y \
        -o DPkg::Lock::Timeout=300 "$@" </dev/null
}

if engine_answers; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    if dockerd_running; then
        die "a Docker engine is running but 'docker info' fails for user $(id -un): add the user to the 'docker' group, or run with sudo"
    fi
    die "no Docker engine answers, and installing or starting one needs root: run 'sudo $0' (or start the engine yourself)"
fi

did=""

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "dockerd is not installed and apt-get is not available; install Docker by hand"
    if ! apt-cache policy docker.io 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt_get update >/dev/null
    fi
    apt_get install docker.io >/dev/null
    command -v dockerd >/dev/null 2>&1 || die "apt-get install docker.io did not provide dockerd"
    did="installed docker.io, "
fi

if dockerd_running; then
    # Already starting (or hung): do not start a second daemon, just wait for it.
    did="${did}waited for the running dockerd"
    daemon_log=""
    daemon_pid=""
else
    if [[ -w /var/log ]]; then
        daemon_log=/var/log/dockerd.log
    else
        daemon_log="${TMPDIR:-/tmp}/dockerd.log"
    fi
    # Detach from the calling shell: own session, no stdin, output to a log,
    # and / as working directory so that no caller's directory is kept busy.
    (cd / && exec nohup setsid dockerd >>"$daemon_log" 2>&1 </dev/null) &
    daemon_pid=$!
    did="${did}started dockerd (log: ${daemon_log})"
fi

deadline=$((SECONDS + wait_secs))
until engine_answers; do
    if ((SECONDS >= deadline)); then
        if [[ -n "$daemon_log" ]]; then
            tail -n 20 "$daemon_log" >&2 || true
        fi
        die "the Docker engine did not answer 'docker info' within ${wait_secs}s${daemon_log:+ (see ${daemon_log})}"
    fi
    if [[ -n "$daemon_pid" ]] && ! kill -0 "$daemon_pid" 2>/dev/null \
        && ! dockerd_running; then
        tail -n 20 "$daemon_log" >&2 || true
        die "dockerd exited right after starting (see ${daemon_log})"
    fi
    sleep 0.5
done

log "${did}; engine answers after $((SECONDS))s"
