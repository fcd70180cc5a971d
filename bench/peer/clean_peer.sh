#!/usr/bin/env bash
# Remove what the peer (bitbucket-pipeline-runner) left behind for the projects
# that bench/peer/run_peer.sh ran, and nothing else.
#
#   bench/peer/clean_peer.sh                 Docker leftovers and bench/peer/.state
#   bench/peer/clean_peer.sh --docker-only   Docker leftovers only (keeps the peer's caches warm)
#
# A run that ends normally, failed step included, removes all its containers
# and its per-step data volume itself. Left behind are:
#  - on the host, by design: for every run, its logs and artifacts in
#    .state/data/pipeline-runner/<path slug>/pipelines/<build>-<uuid>/, and the
#    caches in .state/cache/pipeline-runner/<path slug>/caches/ (run_peer.sh
#    points XDG_DATA_HOME and XDG_CACHE_HOME there), plus the git copies of the
#    projects in .state/repos/;
#  - in Docker, only when the peer is killed (SIGKILL, OOM, power) in a step:
#    its containers and the step's data volume. Then the next run of that
#    project fails at once ("Conflict ... <slug>_system_pause is already in use")
#    until they are removed (it exits 1 then);
#  - in Docker, by design, with the docker service only (not used by the
#    pipelines here): the volume <path slug>_docker_service-cache, labelled
#    org.acidrain.pipeline_runner.project=<path slug>.
#
# run_peer.sh makes the peer's project slug "peer-<12 hex>", so every container
# and volume the peer makes for it is named
#   peer-<12 hex>_system_pause                          (named after the project slug)
#   peer-<12 hex>-<8 chars>_<service>_service           (the rest after the path slug)
#   peer-<12 hex>-<8 chars>-step-<step>[-clone|-artifacts|-docker-cli]
#   peer-<12 hex>-<8 chars>-step-<step>-data            (volume)
#   peer-<12 hex>-<8 chars>_docker_service-cache        (volume, docker service only)
# and only those names are matched. No network is ever created by the peer
# (the steps share the network namespace of the pause container).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly pattern='^peer-[0-9a-f]{12}[-_]'

docker_only=0
case "${1:-}" in
    "") ;;
    --docker-only) docker_only=1 ;;
    *) printf 'usage: clean_peer.sh [--docker-only]\n' >&2; exit 2 ;;
esac

mapfile -t containers < <(docker ps -a --format '{{.Names}}' | grep -E "${pattern}" || true)
if ((${#containers[@]})); then
    docker rm -f -v "${containers[@]}" >/dev/null
fi
printf 'clean_peer: %d container(s) removed%s\n' "${#containers[@]}" \
    "$( ((${#containers[@]})) && printf ': %s' "${containers[*]}")"

mapfile -t volumes < <(docker volume ls -q | grep -E "${pattern}" || true)
if ((${#volumes[@]})); then
    docker volume rm "${volumes[@]}" >/dev/null
fi
printf 'clean_peer: %d volume(s) removed%s\n' "${#volumes[@]}" \
    "$( ((${#volumes[@]})) && printf ': %s' "${volumes[*]}")"

if ((docker_only == 0)) && [[ -d "${here}/.state" ]]; then
    rm -rf "${here}/.state"
    printf 'clean_peer: removed %s\n' "${here}/.state"
fi
