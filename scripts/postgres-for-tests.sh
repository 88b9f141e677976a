#!/usr/bin/env bash
# A throwaway PostgreSQL server for the feedback-store tests.
#
#   eval "$(bash scripts/postgres-for-tests.sh)"     # start (or reuse) it; sets DATABASE_URL_TEST
#   bash scripts/postgres-for-tests.sh stop          # stop it and delete its files
#
# Installs Debian's `postgresql` package when no server binaries are found (needs root), then runs
# initdb in a temporary directory owned by the `postgres` user, listens on 127.0.0.1 on a free port
# with trust authentication (loopback only, test data only), and creates the database. Only the
# `export DATABASE_URL_TEST=...` line goes to stdout; everything else goes to stderr. Running it again
# while the server is up prints the same line.
set -euo pipefail

DB_NAME=ketamine_cds_test
STATE_FILE=${KETAMINE_CDS_PG_STATE:-/tmp/ketamine-cds-pg-tests.state}

log() { echo "postgres-for-tests: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
    echo "$dir"
  fi
}

install_postgresql() {
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and this is not root: apt-get install postgresql"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available"
  log "installing the Debian postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

# Run a server command as the cluster owner (initdb and postgres refuse to run as root).
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

print_export() {
  echo "export DATABASE_URL_TEST=postgresql://postgres@127.0.0.1:$1/$DB_NAME"
}

# State of a running cluster: "<bindir> <datadir> <port>"
read_state() {
  [[ -f "$STATE_FILE" ]] || return 1
  read -r STATE_BINDIR STATE_DIR STATE_PORT <"$STATE_FILE" || return 1
  [[ -n "${STATE_PORT:-}" && -d "${STATE_DIR:-}" ]]
}

running() {
  read_state || return 1
  as_owner "$STATE_BINDIR/pg_ctl" -D "$STATE_DIR/data" status >/dev/null 2>&1 || return 1
  "$STATE_BINDIR/psql" -h 127.0.0.1 -p "$STATE_PORT" -U postgres -d "$DB_NAME" -Atqc 'SELECT 1' >/dev/null 2>&1
}

stop() {
  if read_state; then
    as_owner "$STATE_BINDIR/pg_ctl" -D "$STATE_DIR/data" -m fast -w stop >&2 2>/dev/null || true
    rm -rf "$STATE_DIR"
    log "stopped the server on port $STATE_PORT"
  fi
  rm -f "$STATE_FILE"
}

start() {
  if running; then
    log "reusing the server on 127.0.0.1:$STATE_PORT"
    print_export "$STATE_PORT"
    return
  fi
  stop  # a stale state file from a server that is gone

  local bindir dir port
  bindir=$(find_bindir)
  if [[ -z "$bindir" ]]; then
    install_postgresql
    bindir=$(find_bindir)
    [[ -n "$bindir" ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
  fi
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi

  dir=$(mktemp -d /tmp/ketamine-cds-pg.XXXXXX)
  chmod 755 "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  port=$(free_port)

  as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-instructions >/dev/null
  # Throwaway settings: loopback only, socket in the temp dir, no fsync (test data only).
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    >/dev/null || { cat "$dir/server.log" >&2; die "the server did not start"; }
  "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $DB_NAME" >&2

  echo "$bindir $dir $port" >"$STATE_FILE"
  log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
  print_export "$port"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 [start|stop]" ;;
esac
