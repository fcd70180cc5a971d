#!/usr/bin/env bash
# Run the peer (bitbucket-pipeline-runner 0.6.3) offline on a project.
#
#   bench/peer/run_peer.sh PROJECT_DIR [pipeline-runner run options...]
#
# PROJECT_DIR holds bitbucket-pipelines.yml. Run bench/peer/setup.sh once first.
# Prints the peer's output (step output on stdout, its log on stderr) and exits
# with the peer's own exit code. NOTE: pipeline-runner 0.6.3 exits 0 when a
# step fails (the CLI drops the pipeline's result); it exits non-zero only
# when it cannot run at all (bad file, unknown pipeline, Docker error). With
# PEER_STRICT_EXIT=1 this script exits 1 instead when the peer logged
# "Pipeline '...': Failed".
#
# What it does around the peer:
#  - The peer needs PROJECT_DIR to be the root of a git repository (it clones
#    the current branch at HEAD into every step through the alpine/git helper).
#    So the project is copied (symlinks followed, .git left out) into
#    bench/peer/.state/repos/peer-ID, ID = first 12 hex of sha256(PROJECT_DIR),
#    and committed there when it changed. The path of that copy is what the
#    peer keys its metadata and caches on, and "peer-ID" is the project slug
#    it names its containers and volumes after (clean_peer.sh uses that).
#  - XDG_DATA_HOME and XDG_CACHE_HOME point into bench/peer/.state, so the
#    peer's workspace.json, meta.json (build number), per-run logs and
#    artifacts, and its caches stay there instead of ~/.local/share and
#    ~/.cache. They are kept between runs as they would be for a user: the
#    second run of a project restores the "deps" cache instead of saving it.
#  - It runs from the copy (the peer always loads ./.env), stdin from /dev/null.
#  - One run per project at a time (flock): the peer's container names depend
#    only on the project, so two concurrent runs of one project would clash.
#
# Environment: PEER_PIPELINE (default "default"), PEER_STRICT_EXIT (0),
# PIPELINE_RUNNER_COLOR (default false here) and any other of the peer's own
# PIPELINE_RUNNER_* / PIPELINE_LOG_LEVEL settings (see setup.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly here
readonly state="${here}/.state"
readonly peer="${here}/.venv/bin/pipeline-runner"

die() { printf 'run_peer: error: %s\n' "$*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "usage: run_peer.sh PROJECT_DIR [pipeline-runner run options...]"
[[ -d "$1" ]] || die "not a directory: $1"
project="$(cd "$1" && pwd -P)"
shift
[[ -f "${project}/bitbucket-pipelines.yml" ]] || die "no bitbucket-pipelines.yml in ${project}"
[[ -x "${peer}" ]] || die "the peer is not installed: run ${here}/setup.sh"

id="$(printf '%s' "${project}" | sha256sum | cut -c1-12)"
readonly repo="${state}/repos/peer-${id}"
mkdir -p "${state}/repos" "${state}/data" "${state}/cache"

exec 9>"${repo}.lock"
flock 9

# The git copy of the project.
git_() { git -C "${repo}" -c user.name=run_peer -c user.email=run_peer@localhost -c init.defaultBranch=main "$@"; }
if [[ ! -d "${repo}/.git" ]]; then
    rm -rf "${repo}"
    mkdir -p "${repo}"
    git_ init -q
fi
find "${repo}" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
tar -C "${project}" --exclude=./.git -chf - . | tar -C "${repo}" -xf -
git_ add -A
if ! git_ rev-parse -q --verify HEAD >/dev/null || ! git_ diff --cached --quiet; then
    git_ commit -q -m "run_peer: ${project}"
fi

# Plain logs unless asked otherwise. (The CLI's --no-color does not work in
# 0.6.3: it is set on a proxy object that the log configuration never reads.)
export PIPELINE_RUNNER_COLOR="${PIPELINE_RUNNER_COLOR:-false}"
export XDG_DATA_HOME="${state}/data"
export XDG_CACHE_HOME="${state}/cache"
cd "${repo}"

cmd=("${peer}" run "${PEER_PIPELINE:-default}" --repository-path "${repo}" "$@")

if [[ "${PEER_STRICT_EXIT:-0}" != 1 ]]; then
    exec "${cmd[@]}" </dev/null
fi

# Strict: copy the peer's stderr (its log) to a file and look for the verdict.
log="$(mktemp "${TMPDIR:-/tmp}/run_peer.XXXXXX")"
trap 'rm -f "${log}"' EXIT
set +e
{ "${cmd[@]}" </dev/null 2>&1 1>&3 3>&- | tee "${log}" >&2; rc="${PIPESTATUS[0]}"; } 3>&1
set -e
if [[ "${rc}" == 0 ]] && grep -q "^.*Pipeline '.*': Failed" "${log}"; then
    rc=1
fi
exit "${rc}"
