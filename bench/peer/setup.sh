#!/usr/bin/env bash
# Make the peer, the PyPI package bitbucket-pipeline-runner (CLI
# `pipeline-runner`, repository mathieu-lemay/pipeline-runner), runnable
# offline on this machine, for a side-by-side benchmark with runner.
#
#   bench/peer/setup.sh
#
# Idempotent; a second run changes nothing and takes about a second.
#  1. bench/peer/.venv: python3.11 venv with bitbucket-pipeline-runner==$PEER_VERSION
#     (default 0.6.3, the newest release; it needs Python >= 3.10).
#  2. Local stand-ins, built from runner/base:bookworm and runner/busybox:latest
#     only, for the helper images the peer starts by name:
#       k8s-docker.packages.atlassian.com/pause:3.8   network namespace of a step
#       alpine/git:latest                             clone helper
#       alpine:latest                                 artifacts helper
#     The Dockerfiles are in bench/peer/images/*/Dockerfile, which say what the
#     peer runs in each. An image is rebuilt only when its Dockerfile changes
#     (label dev.runner.peer.source holds the Dockerfile's sha256).
#  3. Prints how the peer configures itself and how it pulls.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "${here}/../.." && pwd)"
readonly here top
readonly version="${PEER_VERSION:-0.6.3}"
readonly venv="${here}/.venv"

die() { printf 'peer-setup: error: %s\n' "$*" >&2; exit 1; }

command -v python3.11 >/dev/null 2>&1 || die "python3.11 not found"
docker info >/dev/null 2>&1 || die "no Docker engine answers (see scripts/engine.sh)"

# --- 1. the venv ---------------------------------------------------------------
installed_version() {
    "${venv}/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
print(version("bitbucket-pipeline-runner"))
PY
}

if [[ "$(installed_version || true)" == "${version}" && -x "${venv}/bin/pipeline-runner" ]]; then
    printf 'peer-setup: %-46s present\n' "venv bitbucket-pipeline-runner==${version}"
else
    started=$SECONDS
    if [[ ! -x "${venv}/bin/python" ]]; then
        rm -rf "${venv}"
        python3.11 -m venv "${venv}"
    fi
    log="$(mktemp "${TMPDIR:-/tmp}/peer-pip.XXXXXX")"
    if ! "${venv}/bin/pip" install --disable-pip-version-check -q \
        "bitbucket-pipeline-runner==${version}" >"${log}" 2>&1 </dev/null; then
        tail -n 40 "${log}" >&2
        die "pip install failed (full log: ${log})"
    fi
    rm -f "${log}"
    [[ "$(installed_version)" == "${version}" ]] || die "bitbucket-pipeline-runner ${version} is not installed after pip"
    printf 'peer-setup: %-46s installed in %ss\n' "venv bitbucket-pipeline-runner==${version}" "$((SECONDS - started))"
fi

# --- 2. the helper images ------------------------------------------------------
# The stand-ins are built FROM these; build them the project's way when missing.
if ! docker image inspect runner/base:bookworm >/dev/null 2>&1 \
    || ! docker image inspect runner/busybox:latest >/dev/null 2>&1; then
    "${top}/scripts/images.sh"
fi

# ensure NAME DIR WHAT: build DIR/Dockerfile as NAME unless NAME was already
# built from the same Dockerfile.
ensure() {
    local name="$1" dir="$2" what="$3" source current old started log
    source="$(sha256sum "${dir}/Dockerfile" | cut -c1-64)"
    current="$(docker image inspect --format '{{index .Config.Labels "dev.runner.peer.source"}}' "${name}" 2>/dev/null || true)"
    if [[ "${current}" == "${source}" ]]; then
        printf 'peer-setup: %-46s present     %s\n' "${name}" "${what}"
        return 0
    fi
    old="$(docker image inspect --format '{{.Id}}' "${name}" 2>/dev/null || true)"
    started=$SECONDS
    log="$(mktemp "${TMPDIR:-/tmp}/peer-image.XXXXXX")"
    if ! DOCKER_BUILDKIT=0 docker build --force-rm --label "dev.runner.peer.source=${source}" \
        -t "${name}" "${dir}" >"${log}" 2>&1 </dev/null; then
        tail -n 40 "${log}" >&2
        die "building ${name} failed (full log: ${log})"
    fi
    rm -f "${log}"
    # An image this script built before and that lost its tag to the new one.
    if [[ -n "${old}" && "$(docker image inspect --format '{{len .RepoTags}}' "${old}" 2>/dev/null || echo 1)" == 0 ]]; then
        docker rmi "${old}" >/dev/null 2>&1 || true
    fi
    printf 'peer-setup: %-46s built in %ss %s\n' "${name}" "$((SECONDS - started))" "${what}"
}

ensure k8s-docker.packages.atlassian.com/pause:3.8 "${here}/images/pause" \
    "(runner/busybox + sh loop: holds the step's network namespace)"
ensure alpine/git:latest "${here}/images/git" \
    "(runner/base + Debian git: clone helper; sh, bash, install, cat, git)"
ensure alpine:latest "${here}/images/alpine" \
    "(runner/base, metadata only: artifacts helper; sh, GNU find, GNU tar -T)"
printf 'peer-setup: %-46s not built   (only for the docker service: services: [docker], options.docker or a pipe:)\n' \
    "docker:20.10.24-cli"
printf 'peer-setup: %-46s not built   (idem: the DinD image, docker-public.packages.atlassian.com/sox/atlassian/bitbucket-pipelines-docker-daemon:v25.0.5-tlsfalse-prod-stable)\n' \
    "docker daemon image"

# --- 3. how the peer configures itself -------------------------------------------
cat <<'EOF'
peer-setup: configuration (pydantic-settings, read from the environment):
  PIPELINE_RUNNER_COLOR=true|false          coloured logs (also --color/--no-color; NO_COLOR disables)
  PIPELINE_LOG_LEVEL=DEBUG                  log level (default DEBUG; note: no RUNNER_ in the name)
  PIPELINE_RUNNER_CPU_LIMITS=false          4-CPU quota on the step container (also --cpu-limits)
  PIPELINE_RUNNER_EXPOSE_SSH_AGENT=false    mount $SSH_AUTH_SOCK (also --ssh)
  PIPELINE_RUNNER_VOLUMES='["a:b[:ro]"]'    extra mounts for the step container (also --volume)
  PIPELINE_RUNNER_DOCKER_PLATFORM=          platform for pulls and the pause/step containers
  PIPELINE_RUNNER_USERNAME=$USER            BITBUCKET_REPO_OWNER
  PIPELINE_RUNNER_TOTAL_MEMORY_LIMIT=4096   MiB per 1x step, shared by step and services
  PIPELINE_RUNNER_BUILD_CONTAINER_MINIMUM_MEMORY=1024, PIPELINE_RUNNER_SERVICE_CONTAINER_DEFAULT_MEMORY_LIMIT=1024
  PIPELINE_RUNNER_OIDC_ENABLED / _ISSUER / _AUDIENCE
  DOCKER_HOST etc.                          docker.from_env()
  XDG_DATA_HOME, XDG_CACHE_HOME             platformdirs: logs, artifacts, meta.json, caches
                                            (run_peer.sh points both into bench/peer/.state)
  ./.env in the working directory           always loaded into the steps' environment (plus -e FILE)
peer-setup: pipeline choice: `pipeline-runner run PIPELINE`; without PIPELINE it asks with fzf,
  and fails (exit 2) without fzf; run_peer.sh passes "default".
peer-setup: pulls: the step and service images (and alpine/git, the clone helper) go through the
  peer's pull_image(), which always calls docker pull once per image per process, with no option or
  env to skip it; offline the daemon answers at once ("no such host", ~20 ms) and the peer falls
  back to the local image with a warning. The pause and alpine helpers use containers.run(), which
  pulls only when the image is missing locally. The stand-ins above are therefore always used.
EOF
