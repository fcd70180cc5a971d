#!/usr/bin/env bash
# A Podman engine with a Docker-compatible API, for tests and CI that need a second engine.
#
#   scripts/podman.sh start [IMAGE...]   install podman + catatonit if missing, configure the container
#                                        ulimits, start `podman system service` on the socket below
#                                        (nothing to do if it already answers), load the runner images
#                                        it lacks from the Docker engine; prints the DOCKER_HOST value last
#   scripts/podman.sh stop               stop the service process (containers it started keep running)
#   scripts/podman.sh host               print the DOCKER_HOST value: unix:///run/runner-podman/podman.sock
#
# Environment:
#   ENGINE_IMAGES  images to load (space or comma separated) when none are given as arguments
#                  (default: runner/busybox:latest runner/redis:bookworm runner/reaper:latest runner/base:bookworm)
#                  (set but empty: load none)
#   PODMAN_WAIT    seconds to wait for the service to answer (default 60)
#
# An image is copied with `docker save IMG | podman load` unless Podman already has it with the same
# ID; afterwards the Docker API name (e.g. runner/busybox:latest) must resolve through the socket.
set -euo pipefail

readonly sock_dir=/run/runner-podman
readonly sock="${sock_dir}/podman.sock"
readonly pid_file="${sock_dir}/podman.pid"
readonly docker_host="unix://${sock}"
readonly wait_secs="${PODMAN_WAIT:-60}"
lock_fd=""
readonly conf=/etc/containers/containers.conf
readonly default_images="runner/busybox:latest runner/redis:bookworm runner/reaper:latest runner/base:bookworm"

readonly script_name=podman usage_text="start [IMAGE...] | stop | host"
apt_install_options=()
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

answers() {
    [[ -S "$sock" ]] || return 1
    [[ "$(curl -s -m 5 --unix-socket "$sock" http://d/_ping 2>/dev/null)" == "OK" ]]
}

# PIDs of `podman system service ... unix://$sock` (ours only: matched by the socket path).
service_pids() {
    local f args
    for f in /proc/[0-9]*/cmdline; do
        args=()
        { mapfile -d '' -t args <"$f"; } 2>/dev/null || continue
        ((${#args[@]})) || continue
        [[ "${args[0]##*/}" == podman ]] || continue
        [[ " ${args[*]} " == *" system service "*" ${docker_host} "* ]] || continue
        f="${f#/proc/}"
        printf '%s\n' "${f%/cmdline}"
    done
}

install_packages_here() {
    install_packages podman catatonit
    command -v podman >/dev/null 2>&1 || die "apt-get install podman did not provide podman"
}

# Make sure [containers] default_ulimits holds nofile=20000:20000 and nproc=32768:32768, keeping any
# other entries of that array and everything else in the file. The file is rewritten only if it changes.
ensure_conf() {
    local tmp
    mkdir -p "$(dirname "$conf")"
    [[ -e "$conf" ]] || : >"$conf"
    tmp="$(mktemp "${conf}.XXXXXX")"
    # Two passes over the file: the first finds out whether [containers] has the key at all.
    awk '
        function header(line) { return line ~ /^[ \t]*\[[^\]]+\][ \t]*(#.*)?$/ }
        function secname(line,  s) { s = line; sub(/^[ \t]*\[+[ \t]*/, "", s); sub(/[ \t]*\].*$/, "", s); return s }
        function wanted(old,   out, n, i, item, items) {
            out = "\"nofile=20000:20000\", \"nproc=32768:32768\""
            n = split(old, items, /"/)
            for (i = 2; i <= n; i += 2) {
                item = items[i]
                if (item ~ /^(nofile|nproc)=/) continue
                out = out ", \"" item "\""
            }
            return "default_ulimits = [" out "]"
        }
        NR == FNR {
            if (header($0)) sec = secname($0)
            else if (sec == "containers" && $0 ~ /^[ \t]*default_ulimits[ \t]*=/) haskey = 1
            if (sec == "containers") hassec = 1
            next
        }
        FNR == 1 { sec = "" }
        collecting {
            value = value " " $0
            if ($0 ~ /\]/) { collecting = 0; print wanted(value) }
            next
        }
        {
            if (header($0)) {
                sec = secname($0)
                print
                if (sec == "containers" && !haskey && !done) { print wanted(""); done = 1 }
                next
            }
            if (sec == "containers" && $0 ~ /^[ \t]*default_ulimits[ \t]*=/ && !done) {
                done = 1
                value = $0
                sub(/^[^=]*=/, "", value)
                if (value ~ /\]/) print wanted(value)
                else collecting = 1
                next
            }
            print
        }
        END {
            if (!hassec) {
                if (NR > 0) print ""
                print "[containers]"
                print wanted("")
            }
        }
    ' "$conf" "$conf" >"$tmp"
    if cmp -s "$tmp" "$conf"; then
        rm -f "$tmp"
    else
        chmod --reference="$conf" "$tmp"
        mv -f "$tmp" "$conf"
        log "set [containers] default_ulimits in ${conf}"
    fi
}

start_service() {
    local pids log_file="" daemon_pid="" deadline
    if answers; then
        return 0
    fi
    mkdir -p "$sock_dir"
    pids="$(service_pids)"
    if [[ -z "$pids" ]]; then
        rm -f "$sock"
        if [[ -w /var/log ]]; then
            log_file=/var/log/runner-podman.log
        else
            log_file="${TMPDIR:-/tmp}/runner-podman.log"
        fi
        # Own session, no stdin, output to a log, / as working directory, and none of the caller's
        # other file descriptors (the lock, pipes of whoever called this script).
        (close_fds && cd / && exec nohup setsid podman system service --time=0 "$docker_host" \
            >>"$log_file" 2>&1 </dev/null) &
        daemon_pid=$!
        printf '%s\n' "$daemon_pid" >"$pid_file"
        log "started podman system service (log: ${log_file})"
    else
        log "waiting for the running podman service (pid ${pids//$'\n'/ })"
    fi
    deadline=$((SECONDS + wait_secs))
    until answers; do
        if ((SECONDS >= deadline)); then
            [[ -n "$log_file" ]] && tail -n 20 "$log_file" >&2
            die "the Podman service did not answer on ${sock} within ${wait_secs}s"
        fi
        if [[ -n "$daemon_pid" ]] && ! alive "$daemon_pid"; then
            tail -n 20 "$log_file" >&2
            die "podman system service exited right after starting (see ${log_file})"
        fi
        sleep 0.2
    done
}

compat_resolves() {
    DOCKER_HOST="$docker_host" docker image inspect -f '{{.Id}}' "$1" 2>/dev/null
}

# Copy the images Podman lacks (by ID) from the Docker engine in one `docker save | podman load`, so
# that layers they share travel once; then make each Docker name resolve through the compat API.
load_images() {
    local img want have missing=() ids=() old=() i names=("$@")
    for img in "$@"; do
        want="$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null)" \
            || die "the Docker engine has no image ${img} (run scripts/images.sh)"
        ids+=("${want#sha256:}")
        have="$(compat_resolves "$img" || true)"
        [[ -n "$have" && "${have#sha256:}" != "${want#sha256:}" ]] && old+=("${have#sha256:}")
        podman image exists "${want#sha256:}" || missing+=("$img")
    done
    if ((${#missing[@]})); then
        log "loading ${missing[*]}"
        docker save "${missing[@]}" | podman load -q >/dev/null
    fi
    for i in "${!ids[@]}"; do
        img="${names[$i]}"
        want="${ids[$i]}"
        have="$(compat_resolves "$img" || true)"
        [[ "${have#sha256:}" == "$want" ]] && continue
        podman image exists "$want" || die "podman load of ${img} did not give image ${want:0:12}"
        # `docker save` names it runner/x:tag, which Podman stores as localhost/runner/x:tag and the
        # compat API finds by the short name; tagging again moves a name an older image still holds.
        podman tag "$want" "$img"
        have="$(compat_resolves "$img" || true)"
        [[ "${have#sha256:}" == "$want" ]] \
            || die "${img} does not resolve to ${want:0:12} through ${docker_host} (got '${have:7:12}')"
    done
    # Older versions that lost their name; one still tagged or used by a container stays.
    for i in "${old[@]}"; do
        if [[ "$(podman image inspect -f '{{len .RepoTags}}' "$i" 2>/dev/null)" == 0 ]]; then
            podman image rm "$i" >/dev/null 2>&1 || true
        fi
    done
}

stop_service() {
    local pids pid deadline
    pids="$(service_pids)"
    if [[ -z "$pids" ]]; then
        rm -f "$pid_file"
        return 0
    fi
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while [[ -n "$(service_pids)" ]]; do
        if ((SECONDS >= deadline)); then
            for pid in $(service_pids); do kill -KILL "$pid" 2>/dev/null || true; done
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$pid_file" "$sock"
    log "stopped podman system service"
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
host)
    printf '%s\n' "$docker_host"
    ;;
start)
    [[ "$(id -u)" -eq 0 ]] || die "needs root (installs packages, writes ${conf}, runs a rootful service)"
    if (($#)); then
        images=("$@")
    else
        IFS=', ' read -r -a images <<<"${ENGINE_IMAGES-$default_images}"
    fi
    take_lock "${sock_dir}/lock" 600
    install_packages_here
    ensure_conf
    start_service
    if ((${#images[@]})); then
        command -v docker >/dev/null 2>&1 || die "the docker CLI is needed to copy images"
        load_images "${images[@]}"
    fi
    printf '%s\n' "$docker_host"
    ;;
stop)
    take_lock "${sock_dir}/lock" 600
    stop_service
    ;;
*)
    usage
    ;;
esac
