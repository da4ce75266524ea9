#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the CRM tests and bench, on 127.0.0.1 only.
#
#   scripts/pg-test-server.sh [--env] [DIR]     start (or reuse) the cluster in DIR (default /tmp/ctiserver-pg)
#   scripts/pg-test-server.sh stop [DIR]        stop it (the files stay; start again reuses them)
#
# Prints the database URL on the last line of stdout (with --env: "export CTISERVER_TEST_PG_URL=...",
# for eval "$(scripts/pg-test-server.sh --env)"). Idempotent: a running cluster is reused.
# initdb refuses to run as root, so as root the server runs as user "postgres" (Debian's package creates
# it) or, failing that, a dedicated system user "ctiserver-pg".
set -euo pipefail

mode=start
env_out=0
dir=/tmp/ctiserver-pg
for arg in "$@"; do
  case "$arg" in
    stop) mode=stop ;;
    --env) env_out=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) dir="$arg" ;;
  esac
done
db=ctiserver_test

bin=""
for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$candidate/initdb" ]; then bin="$candidate"; break; fi
done
[ -n "$bin" ] || { echo "pg-test-server: no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }

as_owner() { "$@"; }
owner="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  owner=postgres
  if ! id -u "$owner" >/dev/null 2>&1; then
    owner=ctiserver-pg
    id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
  fi
  as_owner() { runuser -u "$owner" -- "$@"; }
fi

mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown "$owner" "$dir"
chmod 700 "$dir"
as_owner test -w "$dir" || {
  echo "pg-test-server: $dir is not reachable by user $owner (a parent directory is private?); choose a directory under /tmp" >&2
  exit 1
}
data="$dir/data"
sock="$dir/sock"
log="$dir/server.log"
portfile="$dir/port"

if [ "$mode" = stop ]; then
  if [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
  exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
  as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi
as_owner mkdir -p "$sock"

running=0
if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 && [ -f "$portfile" ]; then
  running=1
  port="$(cat "$portfile")"
fi

if [ "$running" = 0 ]; then
  # A free port chosen by the kernel; the tiny race until postgres binds it is acceptable for tests.
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  echo "$port" >"$portfile"
  as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $sock -c max_connections=200 -c shared_buffers=256MB" \
    start >/dev/null || { tail -20 "$log" >&2; exit 1; }
fi

psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAq)
if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
  "${psql[@]}" -c "CREATE DATABASE $db" >/dev/null
fi

url="postgresql://postgres@127.0.0.1:$port/$db"
if [ "$env_out" = 1 ]; then
  echo "export CTISERVER_TEST_PG_URL=$url"
else
  echo "$url"
fi
