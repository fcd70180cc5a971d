#!/usr/bin/env bash
# Build the runner images that are missing, in dependency order, without any
# registry. An image that already exists is left as it is; remove it with
# `docker rmi NAME` to have it built again.
#
#   runner/base:bookworm    images/base/build.sh     (debootstrap + docker import)
#   runner/busybox:latest   images/busybox/build.sh  (busybox-static + docker import)
#   runner/redis:bookworm   images/redis/Dockerfile  (FROM runner/base:bookworm)
#   runner/postgres:bookworm images/postgres/Dockerfile (FROM runner/base:bookworm)
#   runner/mariadb:bookworm  images/mariadb/Dockerfile  (FROM runner/base:bookworm)
#   runner/reaper:latest    runner/teardown/image/Dockerfile, built by `python -m runner.teardown.provision`
#
# runner/reaper:latest is also rebuilt when ryuk.py or its Dockerfile changed: the image carries their
# hash in the label dev.runner.source-hash.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly top

die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

"${top}/scripts/engine.sh"

# ensure NAME COMMAND...: run COMMAND to build NAME unless NAME exists.
ensure() {
    if docker image inspect "$1" >/dev/null 2>&1; then
        printf 'images: %-24s present\n' "$1"
        return 0
    fi
    build "$@"
}

# build NAME COMMAND...: run COMMAND, which builds NAME, with its output in a log shown on failure.
build() {
    local name="$1" started log
    shift
    started=$SECONDS
    log="$(mktemp "${TMPDIR:-/tmp}/runner-image.XXXXXX")"
    if ! "$@" >"$log" 2>&1 </dev/null; then
        tail -n 40 "$log" >&2
        die "building ${name} failed (full log: ${log})"
    fi
    rm -f "$log"
    docker image inspect "$name" >/dev/null 2>&1 || die "${name} is still missing after its build"
    printf 'images: %-24s built in %ss\n' "$name" "$((SECONDS - started))"
}

ensure runner/base:bookworm "${top}/images/base/build.sh" runner/base:bookworm
ensure runner/busybox:latest "${top}/images/busybox/build.sh" runner/busybox:latest
# The Dockerfile needs nothing beyond the classic builder, which every engine has.
ensure runner/redis:bookworm \
    env DOCKER_BUILDKIT=0 docker build --force-rm -t runner/redis:bookworm "${top}/images/redis"
ensure runner/postgres:bookworm \
    env DOCKER_BUILDKIT=0 docker build --force-rm -t runner/postgres:bookworm "${top}/images/postgres"
ensure runner/mariadb:bookworm \
    env DOCKER_BUILDKIT=0 docker build --force-rm -t runner/mariadb:bookworm "${top}/images/mariadb"

# The reaper is built by the runner itself, as on any engine that lacks it: from the files inside the
# Python package (runner/teardown/image/), rebuilt when they or ryuk.py changed.
"${RUNNER_PYTHON:-${top}/.venv/bin/python}" -m runner.teardown.provision
