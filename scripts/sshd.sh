#!/usr/bin/env bash
# This machine's Docker engine reached over ssh://, as users reach a build box with
# DOCKER_HOST=ssh://user@buildbox: a private sshd on 127.0.0.1 whose sessions run the docker CLI's
# `docker system dial-stdio`, and an ssh client that needs nothing from ~/.ssh, for tests and CI.
#
#   scripts/sshd.sh start   install openssh-server and openssh-client if missing, create the state
#                           directory (host key, client key pair, authorized_keys, sshd_config, ssh_config,
#                           and the wrapper bin/ssh), start sshd on 127.0.0.1 (nothing to do if it already
#                           answers); prints PATH_PREPEND=STATE/bin, then
#                           DOCKER_HOST=ssh://USER@127.0.0.1:PORT last
#   scripts/sshd.sh stop    stop that sshd and its sessions (by its pid file), remove the state directory
#   scripts/sshd.sh host    print the same two lines (fails when it is not running)
#
# Put PATH_PREPEND first in PATH: the Docker SDK and CLI run `ssh` from PATH, and the wrapper there runs
# the real one with `-F STATE/ssh_config` (this key, the pre-seeded host key, strict checking, batch mode).
# Neither ~/.ssh nor /etc/ssh/sshd_config is read or written, and the system's ssh service is left alone.
#
# Environment:
#   RUNNER_SSHD_PORT  the first port tried (default 2222; the next nine are tried when it is busy)
#   RUNNER_SSHD_DIR   the state directory (default /run/runner-sshd as root, else
#                     ${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/runner-sshd-UID)
#   RUNNER_SSHD_WAIT  seconds to wait for the engine to answer through ssh (default 30)
set -euo pipefail

readonly sshd_bin=/usr/sbin/sshd
readonly first_port="${RUNNER_SSHD_PORT:-2222}"
readonly wait_secs="${RUNNER_SSHD_WAIT:-30}"
user="$(id -un)"
readonly user
if [[ -n "${RUNNER_SSHD_DIR:-}" ]]; then
    state="$RUNNER_SSHD_DIR"
elif [[ "$(id -u)" -eq 0 ]]; then
    state=/run/runner-sshd
else
    state="${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/runner-sshd-$(id -u)"
fi
readonly state
readonly sshd_config="${state}/sshd_config"
readonly ssh_config="${state}/ssh_config"
readonly pid_file="${state}/sshd.pid"
readonly port_file="${state}/port"
readonly log_file="${state}/sshd.log"
readonly host_key="${state}/ssh_host_ed25519_key"
readonly client_key="${state}/id_ed25519"
readonly wrapper="${state}/bin/ssh"
lock_fd=""

readonly script_name=sshd usage_text="start | stop | host"
# Only the files: the package's own service is not started (policy-rc.d answers 101 while a temporary one
# is in place), so that nothing listens on port 22 because of this script.
apt_install_options=(--no-install-recommends)
apt_wrapper=with_no_service_start
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_packages_here() {
    install_packages openssh-server openssh-client
    [[ -x "$sshd_bin" ]] || die "apt-get install openssh-server did not provide ${sshd_bin}"
}

# The pid in the pid file, if that process is our sshd (its command line names our config).
sshd_pid() {
    local pid args
    [[ -s "$pid_file" ]] || return 1
    pid="$(<"$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    args="$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" || return 1
    [[ "$args" == *"sshd"*" -f ${sshd_config}"* ]] || return 1
    printf '%s\n' "$pid"
}

# PID and its descendants, parents first.
process_tree() {
    local pid="$1" child
    printf '%s\n' "$pid"
    while read -r child; do
        process_tree "$child"
    done < <(awk -v p="$pid" '$1 == "PPid:" && $2 == p { split(FILENAME, a, "/"); print a[3] }' \
        /proc/[0-9]*/status 2>/dev/null)
}

port_in_use() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

print_host() {
    printf 'PATH_PREPEND=%s\n' "${state}/bin"
    printf 'DOCKER_HOST=ssh://%s@127.0.0.1:%s\n' "$user" "$(<"$port_file")"
}

# The engine answers through the wrapper: the check `start` makes, and the one `host` relies on.
engine_answers() {
    local port
    port="$(<"$port_file")"
    PATH="${state}/bin:${PATH}" DOCKER_HOST="ssh://${user}@127.0.0.1:${port}" \
        timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Keys and the files that do not depend on the port; kept across restarts.
make_state() {
    local real_ssh
    mkdir -p "$state"
    [[ -O "$state" && ! -L "$state" ]] || die "${state} is not a directory of $(id -un)'s"
    chmod 700 "$state"
    mkdir -p "${state}/bin"
    [[ -s "$host_key" ]] || ssh-keygen -q -t ed25519 -N '' -C runner-sshd-host -f "$host_key" </dev/null
    if [[ ! -s "$client_key" ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "runner-sshd-client" -f "$client_key" </dev/null
    fi
    install -m 600 "${client_key}.pub" "${state}/authorized_keys"
    real_ssh=/usr/bin/ssh
    [[ -x "$real_ssh" ]] || die "${real_ssh} is missing (openssh-client)"
    cat >"${wrapper}.tmp" <<EOF
#!/bin/sh
# ssh for DOCKER_HOST=ssh://...: this state directory's key and known hosts, nothing from ~/.ssh.
exec ${real_ssh} -F ${ssh_config} "\$@"
EOF
    chmod 755 "${wrapper}.tmp"
    mv -f "${wrapper}.tmp" "$wrapper"
}

write_configs() {
    local port="$1"
    cat >"$sshd_config" <<EOF
# Written by scripts/sshd.sh: a private sshd for DOCKER_HOST=ssh://${user}@127.0.0.1:${port}.
Port ${port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey ${host_key}
PidFile ${pid_file}
AuthorizedKeysFile ${state}/authorized_keys
AllowUsers ${user}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitEmptyPasswords no
UsePAM no
StrictModes yes
PermitUserEnvironment no
AllowAgentForwarding no
AllowTcpForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PermitTTY no
PrintMotd no
PrintLastLog no
UseDNS no
LoginGraceTime 30
# The Docker SDK opens one ssh connection per request, many at once: do not drop them at 10.
MaxStartups 200
ClientAliveInterval 30
ClientAliveCountMax 3
LogLevel ERROR
EOF
    # OpenSSH 9.8 and later penalise addresses whose connections fail; never this one.
    if "$sshd_bin" -t -f "$sshd_config" -o 'PerSourcePenalties=no' >/dev/null 2>&1; then
        printf 'PerSourcePenalties no\n' >>"$sshd_config"
    fi
    cat >"$ssh_config" <<EOF
# Written by scripts/sshd.sh: used by ${wrapper} in place of ~/.ssh/config and /etc/ssh/ssh_config.
Host *
    IdentityFile ${client_key}
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile ${state}/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    CheckHostIP no
    BatchMode yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ForwardAgent no
    ForwardX11 no
    ControlMaster no
    ControlPath none
    RequestTTY no
    ConnectTimeout 10
    ServerAliveInterval 30
    ServerAliveCountMax 3
    LogLevel ERROR
EOF
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "${host_key}.pub")" >"${state}/known_hosts"
    printf '%s\n' "$port" >"$port_file"
}

start_sshd() {
    local port pid deadline tried=()
    if sshd_pid >/dev/null && [[ -s "$port_file" ]] && engine_answers; then
        return 0
    fi
    stop_sshd quiet
    [[ "$(id -u)" -ne 0 ]] || install -d -m 755 /run/sshd  # its privilege separation directory
    for port in $(seq "$first_port" $((first_port + 9))); do
        if port_in_use "$port"; then
            tried+=("$port (in use)")
            continue
        fi
        write_configs "$port"
        "$sshd_bin" -t -f "$sshd_config" || die "sshd refuses ${sshd_config}"
        rm -f "$pid_file"
        : >"$log_file"
        # sshd closes every other descriptor and detaches itself; -E keeps its messages here.
        if ! (cd / && exec "$sshd_bin" -f "$sshd_config" -E "$log_file" </dev/null >/dev/null 2>&1); then
            tried+=("${port} ($(tail -n 1 "$log_file"))")
            continue
        fi
        deadline=$((SECONDS + 10))
        # It detaches before it binds: a port taken since the check shows only in its log.
        until pid="$(sshd_pid)"; do
            if ((SECONDS >= deadline)) || grep -q 'Cannot bind' "$log_file"; then
                break
            fi
            sleep 0.1
        done
        if [[ -z "${pid:-}" ]]; then
            tried+=("${port} ($(tail -n 1 "$log_file" 2>/dev/null || echo 'no pid file'))")
            continue
        fi
        break
    done
    [[ -n "${pid:-}" ]] || die "sshd did not start on 127.0.0.1: tried ${tried[*]}"
    log "started sshd (pid ${pid}) on 127.0.0.1:$(<"$port_file")"
    deadline=$((SECONDS + wait_secs))
    until engine_answers; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$log_file" >&2 || true
            PATH="${state}/bin:${PATH}" DOCKER_HOST="ssh://${user}@127.0.0.1:$(<"$port_file")" \
                timeout 20 docker version >&2 || true
            die "the engine does not answer through ssh://${user}@127.0.0.1:$(<"$port_file")"
        fi
        sleep 0.3
    done
}

# Stop our sshd and the sessions it forked (which outlive it otherwise); `quiet` keeps the state.
stop_sshd() {
    local pid pids deadline p
    if pid="$(sshd_pid)"; then
        mapfile -t pids < <(process_tree "$pid")
        kill -TERM "${pids[@]}" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        for p in "${pids[@]}"; do
            while alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
            if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
        done
        [[ "${1:-}" == quiet ]] || log "stopped sshd (pid ${pid})"
    fi
    rm -f "$pid_file"
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift
(($# == 0)) || usage

case "$cmd" in
host)
    if ! sshd_pid >/dev/null || [[ ! -s "$port_file" ]]; then
        die "not running (run: $0 start)"
    fi
    print_host
    ;;
start)
    install_packages_here
    command -v docker >/dev/null 2>&1 || die "the docker CLI is needed: its dial-stdio is the remote end"
    take_lock "${state}.lock" 300
    make_state
    start_sshd
    print_host
    ;;
stop)
    take_lock "${state}.lock" 300
    stop_sshd
    rm -rf "$state"
    ;;
*)
    usage
    ;;
esac
