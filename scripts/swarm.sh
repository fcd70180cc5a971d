#!/usr/bin/env bash
# A three-node Docker Swarm and the registry its nodes pull from, all on this machine: dockerd in three
# privileged Podman containers on one Podman network, plus Debian's docker-registry, for the cluster
# tests and benchmark.
#
#   scripts/swarm.sh start [IMAGE...]  start Podman (scripts/podman.sh), build the node image once, start
#                                      the registry and three nodes (nothing to do for what answers),
#                                      make node 1 the manager and join the others, push the images to
#                                      the registry (through node 1) under REGISTRY/NAME; prints
#                                      DOCKER_HOST=tcp://MANAGER:2375 and RUNNER_REGISTRY=REGISTRY last
#   scripts/swarm.sh stop              remove the nodes, their volumes, the registry and the network
#   scripts/swarm.sh host              print those two lines (fails when the Swarm is not up)
#
# Every node resolves the registry as runner-registry:5000 (an /etc/hosts entry) and marks it insecure;
# this machine reaches the manager's API at its Podman address. Published ports of the nodes are not
# reached from here: cluster runs decide readiness inside the cluster.
#
# Environment:
#   SWARM_IMAGES   images to push (space or comma separated) when none are given as arguments
#                  (default: runner/busybox:latest runner/redis:bookworm runner/reaper:latest
#                  runner/base:bookworm, which the manager also builds the runner's images from)
#                  (set but empty: push none)
#   SWARM_WAIT     seconds to wait for an engine to answer (default 90)
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly top
readonly network=runner-swarm
readonly subnet=10.215.0.0/24
readonly registry_name=runner-registry
readonly registry_ip=10.215.0.10
readonly registry="${registry_name}:5000"
readonly nodes=(runner-swarm-1 runner-swarm-2 runner-swarm-3)
readonly node_ips=(10.215.0.11 10.215.0.12 10.215.0.13)
readonly label=dev.runner.test-engine=swarm
readonly image=localhost/runner/swarm-node:bookworm
readonly base=runner/base:bookworm
readonly port=2375
readonly wait_secs="${SWARM_WAIT:-90}"
readonly lock_file=/run/runner-swarm.lock
lock_fd=""
readonly default_images="runner/busybox:latest runner/redis:bookworm runner/reaper:latest runner/base:bookworm"

readonly script_name=swarm usage_text="start [IMAGE...] | stop | host"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dockerfile() {
    cat <<EOF
FROM ${base}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends docker.io docker-registry iptables iproute2 procps \\
 && rm -rf /var/lib/apt/lists/*
# The package's registry asks for htpasswd logins; the test registry serves anyone on its network, and
# lets a run's images be deleted after it.
RUN printf '%s\n' 'version: 0.1' 'storage:' '  filesystem:' '    rootdirectory: /var/lib/docker-registry' \\
      '  delete:' '    enabled: true' 'http:' '  addr: 0.0.0.0:5000' > /etc/docker/registry/config.yml
VOLUME /var/lib/docker
EOF
}

state_of() {
    podman container inspect -f '{{.State.Status}}' "$1" 2>/dev/null || true
}

answers() {
    [[ "$(curl -s -m 3 "http://$1:${port}/_ping" 2>/dev/null)" == "OK" ]]
}

node_engine() {
    printf 'tcp://%s:%s' "$1" "$port"
}

ensure_network() {
    podman network exists "$network" && return 0
    podman network create --label "$label" --subnet "$subnet" "$network" >/dev/null
}

ensure_registry() {
    if [[ "$(state_of "$registry_name")" == running ]] \
        && curl -s -m 3 -o /dev/null "http://${registry_ip}:5000/v2/"; then
        return 0
    fi
    podman rm -f -t 0 "$registry_name" >/dev/null 2>&1 || true
    (close_fds && cd / && exec podman run -d --name "$registry_name" --label "$label" \
        --network "$network" --ip "$registry_ip" "$image" \
        docker-registry serve /etc/docker/registry/config.yml >/dev/null)
    local deadline=$((SECONDS + wait_secs))
    until curl -s -m 3 -o /dev/null "http://${registry_ip}:5000/v2/"; do
        ((SECONDS < deadline)) || die "the registry did not answer at ${registry_ip}:5000 within ${wait_secs}s"
        sleep 0.2
    done
}

# start_node NAME IP: a dockerd in a privileged container, its data in a volume of its own.
start_node() {
    local name="$1" ip="$2" driver deadline
    if [[ "$(state_of "$name")" == running ]] && answers "$ip"; then
        return 0
    fi
    for driver in ${SWARM_STORAGE_DRIVER:-overlay2 vfs}; do
        podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
        podman volume rm -f "$name" >/dev/null 2>&1 || true
        podman volume create --label "$label" "$name" >/dev/null
        (close_fds && cd / && exec podman run -d --privileged --name "$name" --hostname "$name" \
            --label "$label" --network "$network" --ip "$ip" \
            --add-host "${registry_name}:${registry_ip}" -v "${name}:/var/lib/docker" "$image" \
            dockerd -H "tcp://0.0.0.0:${port}" -H unix:///var/run/docker.sock --tls=false \
            --insecure-registry "$registry" --storage-driver "$driver" >/dev/null)
        deadline=$((SECONDS + wait_secs))
        while ! answers "$ip"; do
            [[ "$(state_of "$name")" == running ]] || break
            ((SECONDS < deadline)) || die "the engine of ${name} did not answer within ${wait_secs}s"
            sleep 0.2
        done
        if answers "$ip"; then
            log "${name}: dockerd (storage driver ${driver}) at $(node_engine "$ip")"
            return 0
        fi
        log "${name}: dockerd with storage driver ${driver} stopped:"
        podman logs --tail 5 "$name" 2>&1 | sed 's/^/    /' >&2 || true
    done
    die "no storage driver worked for ${name}"
}

swarm_state() {
    docker -H "$(node_engine "$1")" info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || true
}

form_swarm() {
    local manager_ip="${node_ips[0]}" token index ip
    local manager
    manager="$(node_engine "$manager_ip")"
    if [[ "$(swarm_state "$manager_ip")" != active ]]; then
        docker -H "$manager" swarm init --advertise-addr "$manager_ip" >/dev/null
    fi
    token="$(docker -H "$manager" swarm join-token -q worker)"
    for index in 1 2; do
        ip="${node_ips[$index]}"
        if [[ "$(swarm_state "$ip")" != active ]]; then
            docker -H "$(node_engine "$ip")" swarm leave --force >/dev/null 2>&1 || true
            docker -H "$(node_engine "$ip")" swarm join --token "$token" "${manager_ip}:2377" >/dev/null
        fi
    done
    local deadline=$((SECONDS + wait_secs)) ready
    while :; do
        ready="$(docker -H "$manager" node ls -f role=worker --format '{{.Status}}' | grep -c Ready || true)"
        ((ready >= 2)) && break
        ((SECONDS < deadline)) || die "the workers did not become Ready within ${wait_secs}s"
        sleep 0.5
    done
    # Workers that left and joined again stay listed as Down: they would only confuse `node ls`.
    docker -H "$manager" node ls -f role=worker --format '{{.ID}} {{.Status}}' \
        | awk '$2 == "Down" { print $1 }' | xargs -r docker -H "$manager" node rm --force >/dev/null
}

# push_images IMAGE...: into the registry through the manager, which resolves it; an image whose ID the
# registry already has under that name is not sent again.
push_images() {
    local manager img target want have
    manager="$(node_engine "${node_ips[0]}")"
    for img in "$@"; do
        want="$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null)" \
            || die "the local Docker engine has no image ${img} (run scripts/images.sh)"
        target="${registry}/${img}"
        have="$(docker -H "$manager" image inspect -f '{{.Id}}' "$target" 2>/dev/null || true)"
        if [[ "$have" != "$want" ]]; then
            docker save "$img" | docker -H "$manager" load -q >/dev/null
            docker -H "$manager" tag "$img" "$target"
        fi
        docker -H "$manager" push -q "$target" >/dev/null || die "pushing ${target} failed"
    done
}

print_hosts() {
    printf 'DOCKER_HOST=%s\n' "$(node_engine "${node_ips[0]}")"
    printf 'RUNNER_REGISTRY=%s\n' "$registry"
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
host)
    command -v podman >/dev/null 2>&1 || die "podman is not installed (run $0 start)"
    [[ "$(swarm_state "${node_ips[0]}")" == active ]] || die "the Swarm is not up (run $0 start)"
    print_hosts
    ;;
start)
    [[ "$(id -u)" -eq 0 ]] || die "needs root (Podman runs the nodes privileged)"
    if (($#)); then
        images=("$@")
    else
        IFS=', ' read -r -a images <<<"${SWARM_IMAGES-$default_images}"
    fi
    take_lock "$lock_file" 900
    started=$SECONDS
    "${top}/scripts/podman.sh" start "$base" >/dev/null {lock_fd}>&-
    ensure_podman_image "$image" dockerfile
    ensure_network
    ensure_registry
    for index in 0 1 2; do
        start_node "${nodes[$index]}" "${node_ips[$index]}"
    done
    form_swarm
    if ((${#images[@]})); then
        push_images "${images[@]}"
    fi
    log "three nodes and the registry are up ($((SECONDS - started))s)"
    print_hosts
    ;;
stop)
    [[ "$(id -u)" -eq 0 ]] || die "needs root"
    take_lock "$lock_file" 600
    if command -v podman >/dev/null 2>&1; then
        for name in "${nodes[@]}" "$registry_name"; do
            podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
            podman volume rm -f "$name" >/dev/null 2>&1 || true
        done
        podman network rm -f "$network" >/dev/null 2>&1 || true
    fi
    log "stopped"
    ;;
*)
    usage
    ;;
esac
