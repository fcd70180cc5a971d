#!/usr/bin/env bash
# Create the cluster in PGDATA on the first start, then run the server in the foreground as PID 1.
# Any command other than `postgres ...` runs as given (e.g. `docker run ... bash`).
set -euo pipefail

if [[ "${1:-}" != postgres ]]; then
    exec "$@"
fi
shift

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    # setpriv execs in place, so the server stays PID 1 and receives `docker stop`'s signal itself.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    options=(--username="$user" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust)
    if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
        method=scram-sha-256
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        options+=(--pwfile="$pwfile")
    else
        method=trust
        echo "docker-entrypoint: POSTGRES_PASSWORD is empty: every host connects without a password" >&2
    fi
    initdb "${options[@]}" --auth-host="$method" >/dev/null
    rm -f "${pwfile:-}"
    printf 'host all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
    if [[ "$db" != postgres ]]; then
        # Single-user mode: no server to start and stop just to create a database.
        printf 'CREATE DATABASE "%s";\n' "${db//\"/\"\"}" |
            postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "docker-entrypoint: initialised $PGDATA (user ${user}, database ${db}, host auth ${method})"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
