#!/usr/bin/env bash
# Create the data directory and its users on the first start, then run the server in the foreground as
# PID 1. Arguments that start with `-` go to the server (`docker run ... --max-connections=500`); any
# command other than `mariadbd ...` or `mysqld ...` runs as given (e.g. `docker run ... bash`).
set -euo pipefail

if [[ "${1:-}" == -* ]]; then
    set -- mariadbd "$@"
fi
if [[ "${1:-}" != mariadbd && "${1:-}" != mysqld ]]; then
    exec "$@"
fi
shift

datadir=/var/lib/mysql

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$datadir" /run/mysqld
    chown mysql:mysql "$datadir" /run/mysqld
    # setpriv execs in place, so the server stays PID 1 and receives `docker stop`'s signal itself.
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" mariadbd "$@"
fi

die() { printf 'docker-entrypoint: error: %s\n' "$*" >&2; exit 1; }

# A quoted SQL string: the bootstrap SQL clears NO_BACKSLASH_ESCAPES, so a backslash escapes.
literal() {
    local s="${1//\\/\\\\}"
    printf "'%s'" "${s//\'/\\\'}"
}

# shellcheck disable=SC2016  # backquotes around a name, not a command substitution
identifier() { printf '`%s`' "${1//\`/\`\`}"; }

if [[ ! -d "$datadir/mysql" ]]; then
    root_password="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
    allow_empty="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
    database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
    user="${MARIADB_USER:-${MYSQL_USER:-}}"
    password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"

    # As the official image: a root open to every host without a password has to be asked for.
    if [[ -z "$root_password" && -z "$allow_empty" ]]; then
        die "root needs a password: set MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD), or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=yes (or MYSQL_ALLOW_EMPTY_PASSWORD=yes)"
    fi
    if [[ "$user" == root ]]; then
        die "MARIADB_USER=root: root is set up by MARIADB_ROOT_PASSWORD; MARIADB_USER names another user"
    fi
    if [[ -n "$user" && -z "$password" ]]; then
        die "MARIADB_USER=${user} needs MARIADB_PASSWORD (or MYSQL_PASSWORD)"
    fi

    sql="$(mktemp)"
    {
        echo "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '');"
        # mariadb-install-db gives root@localhost and root@<this container's hostname> the right to grant
        # PROXY. --skip-name-resolve never matches the hostname and warns about it at every start, and the
        # bootstrap may not GRANT PROXY itself: the row moves to root@'%'.
        echo "UPDATE mysql.proxies_priv SET Host = '%' WHERE Host <> 'localhost';"
        # --bootstrap runs without the grant tables loaded; CREATE USER and GRANT need them.
        echo "FLUSH PRIVILEGES;"
        # Over the socket, the system's root needs no password: `docker exec CID mariadb` just works.
        printf 'ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(%s);\n' \
            "$(literal "$root_password")"
        printf "CREATE USER root@'%%' IDENTIFIED BY %s;\n" "$(literal "$root_password")"
        echo "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;"
        if [[ -n "$database" ]]; then
            printf 'CREATE DATABASE %s;\n' "$(identifier "$database")"
        fi
        if [[ -n "$user" ]]; then
            printf "CREATE USER %s@'%%' IDENTIFIED BY %s;\n" "$(literal "$user")" "$(literal "$password")"
            if [[ -n "$database" ]]; then
                printf "GRANT ALL ON %s.* TO %s@'%%';\n" "$(identifier "$database")" "$(literal "$user")"
            fi
        fi
    } >"$sql"

    # One `mariadbd --bootstrap` makes the system tables and runs the SQL above, with no network and no
    # server to start and stop: the real server below is the first to listen, with every user in place.
    fresh=""
    if [[ -z "$(ls -A "$datadir")" ]]; then
        fresh=1
    fi
    if ! log="$(mariadb-install-db --datadir="$datadir" --skip-test-db --extra-file="$sql" "$@" 2>&1)"; then
        rm -f "$sql"
        printf '%s\n' "$log" >&2
        # Half a data directory would pass for a whole one at the next start, without the users.
        if [[ -n "$fresh" ]]; then
            find "$datadir" -mindepth 1 -delete
        fi
        die "mariadb-install-db failed"
    fi
    rm -f "$sql"

    if [[ -n "$root_password" ]]; then
        auth="root with a password from any host"
    else
        auth="root without a password from any host"
        echo "docker-entrypoint: root's password is empty: every host connects as root without one" >&2
    fi
    echo "docker-entrypoint: initialised ${datadir} (${auth}, database ${database:-none}, user ${user:-none})"
fi

exec mariadbd "$@"
