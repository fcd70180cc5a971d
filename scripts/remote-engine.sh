#!/usr/bin/env bash
# A Docker engine reached over tcp:// whose container addresses the client cannot route: a dockerd in a
# privileged Podman container, for tests and CI of the remote-engine case.
#
#   scripts/remote-engine.sh start [IMAGE...]  start Podman (scripts/podman.sh), build the image
#                                              localhost/runner/dind:bookworm once, run the container
#                                              runner-remote-engine (nothing to do if its API answers),
#                                              load the runner images it lacks from the local Docker engine,
#                                              make its container subnets unreachable from this machine;
#                                              prints DOCKER_HOST=tcp://IP:2375 last
#   scripts/remote-engine.sh stop              remove the container, its volume and the routes
#   scripts/remote-engine.sh host              print DOCKER_HOST=tcp://IP:2375 (fails when not running)
#
# The inner engine's containers get 10.213.0.0/24 (default bridge) and 10.214.0.0/16 (user networks).
# This machine routes both to `unreachable`, so a client that connects to a container address fails at
# once instead of going out the default route. Published ports (on 0.0.0.0 inside) are reached at
# IP:PORT; ports published on 127.0.0.1 inside are not reachable from here.
#
# Environment:
#   ENGINE_IMAGES                 images to load (space or comma separated) when none are given as
#                                 arguments (default: runner/busybox:latest runner/redis:bookworm
#                                 runner/reaper:latest runner/base:bookworm)
#                                 (set but empty: load none)
#   REMOTE_ENGINE_STORAGE_DRIVER  overlay2 or vfs (default: overlay2, falling back to vfs)
#   REMOTE_ENGINE_WAIT            seconds to wait for the inner API to answer (default 60)
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly top
readonly name=runner-remote-engine
readonly volume=runner-remote-engine
readonly label=dev.runner.test-engine=remote
readonly image=localhost/runner/dind:bookworm
readonly base=runner/base:bookworm
readonly port=2375
readonly subnets=(10.213.0.0/16 10.214.0.0/16)
readonly wait_secs="${REMOTE_ENGINE_WAIT:-60}"
readonly lock_file=/run/runner-remote-engine.lock
lock_fd=""
readonly default_images="runner/busybox:latest runner/redis:bookworm runner/reaper:latest runner/base:bookworm"

readonly script_name=remote-engine usage_text="start [IMAGE...] | stop | host"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dockerfile() {
    cat <<EOF
FROM ${base}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends docker.io iptables iproute2 procps \\
 && rm -rf /var/lib/apt/lists/*
VOLUME /var/lib/docker
EOF
}

container_state() {
    podman container inspect -f '{{.State.Status}}' "$name" 2>/dev/null || true
}

container_ip() {
    podman container inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$name" \
        2>/dev/null | awk '{ print $1 }'
}

answers() {
    [[ "$(curl -s -m 3 "http://$1:${port}/_ping" 2>/dev/null)" == "OK" ]]
}

# run_engine DRIVER: create and start the container; succeed once the API answers.
run_engine() {
    local driver="$1" deadline ip state
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    podman volume exists "$volume" || podman volume create --label "$label" "$volume" >/dev/null
    # conmon outlives this script: it gets none of our other file descriptors (the lock, callers' pipes).
    (close_fds && cd / && exec podman run -d --privileged --name "$name" --label "$label" \
        --label "dev.runner.storage-driver=${driver}" \
        -v "${volume}:/var/lib/docker" "$image" \
        dockerd -H "tcp://0.0.0.0:${port}" -H unix:///var/run/docker.sock --tls=false \
        --bip 10.213.0.1/24 --default-address-pool base=10.214.0.0/16,size=24 \
        --storage-driver "$driver" >/dev/null)
    deadline=$((SECONDS + wait_secs))
    while :; do
        ip="$(container_ip)"
        if [[ -n "$ip" ]] && answers "$ip"; then
            return 0
        fi
        state="$(container_state)"
        if [[ "$state" != running && "$state" != created && "$state" != configured \
            && "$state" != initialized ]]; then
            log "dockerd with storage driver ${driver} stopped (state '${state}'):"
            podman logs --tail 5 "$name" 2>&1 | sed 's/^/    /' >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            podman logs --tail 20 "$name" >&2 2>&1 || true
            die "the engine in ${name} did not answer at tcp://${ip}:${port} within ${wait_secs}s"
        fi
        sleep 0.2
    done
}

start_engine() {
    local ip driver
    if [[ "$(container_state)" == running ]]; then
        ip="$(container_ip)"
        if [[ -n "$ip" ]] && answers "$ip"; then
            return 0
        fi
        # Running but not answering yet (starting, or hung): give it the usual time.
        local deadline=$((SECONDS + wait_secs))
        until [[ -n "$ip" ]] && answers "$ip"; do
            ((SECONDS < deadline)) || break
            sleep 0.5
            ip="$(container_ip)"
        done
        [[ -n "$ip" ]] && answers "$ip" && return 0
        log "${name} runs but its API does not answer: recreating it"
    fi
    ensure_podman_image "$image" dockerfile
    if [[ -n "${REMOTE_ENGINE_STORAGE_DRIVER:-}" ]]; then
        run_engine "$REMOTE_ENGINE_STORAGE_DRIVER" || die "dockerd did not start with storage driver ${REMOTE_ENGINE_STORAGE_DRIVER}"
        driver="$REMOTE_ENGINE_STORAGE_DRIVER"
    elif run_engine overlay2; then
        driver=overlay2
    else
        log "falling back to the vfs storage driver"
        # Data of the other driver would only take space.
        podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
        podman volume rm -f "$volume" >/dev/null 2>&1 || true
        run_engine vfs || die "dockerd did not start with overlay2 nor vfs (podman logs ${name})"
        driver=vfs
    fi
    log "started ${name} (storage driver ${driver}) at tcp://$(container_ip):${port}"
}

add_routes() {
    local net
    for net in "${subnets[@]}"; do
        ip route replace unreachable "$net"
    done
}

del_routes() {
    local net
    for net in "${subnets[@]}"; do
        while ip route del unreachable "$net" 2>/dev/null; do :; done
    done
}

# Copy the images the inner engine lacks (by ID) in one `docker save | docker load`, so that layers
# they share travel once.
load_images() {
    local remote="$1" img want have missing=() old=()
    shift
    for img in "$@"; do
        want="$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null)" \
            || die "the local Docker engine has no image ${img} (run scripts/images.sh)"
        have="$(docker -H "$remote" image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)"
        [[ "$have" == "$want" ]] && continue
        missing+=("$img")
        [[ -n "$have" ]] && old+=("$have")
    done
    ((${#missing[@]})) || return 0
    log "loading ${missing[*]}"
    docker save "${missing[@]}" | docker -H "$remote" load -q >/dev/null
    for img in "${missing[@]}"; do
        want="$(docker image inspect -f '{{.Id}}' "$img")"
        have="$(docker -H "$remote" image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)"
        [[ "$have" == "$want" ]] || die "${img} is not ${want:7:12} in the remote engine after loading"
    done
    # Older versions that lost their name; one still tagged or used by a container stays.
    for img in "${old[@]}"; do
        if [[ "$(docker -H "$remote" image inspect -f '{{len .RepoTags}}' "$img" 2>/dev/null)" == 0 ]]; then
            docker -H "$remote" image rm "$img" >/dev/null 2>&1 || true
        fi
    done
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
host)
    command -v podman >/dev/null 2>&1 || die "podman is not installed (run $0 start)"
    ip="$(container_ip)"
    [[ "$(container_state)" == running && -n "$ip" ]] || die "${name} is not running (run $0 start)"
    printf 'DOCKER_HOST=tcp://%s:%s\n' "$ip" "$port"
    ;;
start)
    [[ "$(id -u)" -eq 0 ]] || die "needs root (Podman runs the engine privileged; routes)"
    if (($#)); then
        images=("$@")
    else
        IFS=', ' read -r -a images <<<"${ENGINE_IMAGES-$default_images}"
    fi
    # Podman itself, with only the image the build starts from.
    take_lock "$lock_file" 600
    "${top}/scripts/podman.sh" start "$base" >/dev/null {lock_fd}>&-
    start_engine
    ip="$(container_ip)"
    add_routes
    if ((${#images[@]})); then
        load_images "tcp://${ip}:${port}" "${images[@]}"
    fi
    printf 'DOCKER_HOST=tcp://%s:%s\n' "$ip" "$port"
    ;;
stop)
    [[ "$(id -u)" -eq 0 ]] || die "needs root"
    take_lock "$lock_file" 600
    if command -v podman >/dev/null 2>&1; then
        podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
        podman volume rm -f "$volume" >/dev/null 2>&1 || true
    fi
    del_routes
    log "stopped"
    ;;
*)
    usage
    ;;
esac
