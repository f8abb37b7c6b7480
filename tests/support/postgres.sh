#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, on loopback.
#
#   tests/support/postgres.sh start DIR   initdb in DIR and start it;
#                                         prints the server's URL (no
#                                         database name at its end)
#   tests/support/postgres.sh stop DIR    stop it (DIR stays)
#   tests/support/postgres.sh resume DIR  start it again, on its port
#   tests/support/postgres.sh run CMD...  start one in a fresh directory,
#                                         run CMD with VG_TEST_PG_URL (and
#                                         VG_TEST_PG_DIR, for stop and
#                                         resume) set,
#                                         stop it, delete the directory;
#                                         exits with CMD's status
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# postgres user (Debian's package makes it) or nobody. fsync is off: the
# tests check what vidgate does, not what the disk does (PG_FSYNC=on keeps
# it, for benchmarks).
set -euo pipefail

bindir() {
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] || { echo "postgres.sh: no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 && echo postgres || echo nobody
  else
    id -un
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  local dir=$1 bin port
  bin=$(bindir)
  mkdir -p "$dir"
  chmod 755 "$dir"
  mkdir -p "$dir/data"
  chown "$(owner)" "$dir/data" 2>/dev/null || true
  chmod 700 "$dir/data"
  as_owner "$bin/initdb" -D "$dir/data" -A trust -U vg -E UTF8 \
    --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(free_port)
  touch "$dir/server.log"
  chown "$(owner)" "$dir/server.log" 2>/dev/null || true
  echo "$port" >"$dir/port"
  resume "$dir"
  echo "postgresql://vg@127.0.0.1:$port/"
}

resume() {
  local dir=$1 port
  port=$(cat "$dir/port")
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir/data \
        $([ "${PG_FSYNC:-off}" = on ] || echo -F) \
        -c max_connections=200 -c shared_buffers=128MB" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
}

stop() {
  local dir=$1
  [ -d "$dir/data" ] || return 0
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  resume) resume "$2" ;;
  run)
    shift
    dir=$(mktemp -d "${TMPDIR:-/tmp}/vgpg-XXXXXX")
    trap 'stop "$dir"; rm -rf "$dir"' EXIT
    VG_TEST_PG_URL=$(start "$dir")
    VG_TEST_PG_DIR=$dir
    export VG_TEST_PG_URL VG_TEST_PG_DIR
    set +e
    "$@"
    rc=$?
    set -e
    exit $rc
    ;;
  *) echo "usage: $0 start DIR | stop DIR | resume DIR | run CMD..." >&2; exit 2 ;;
esac
