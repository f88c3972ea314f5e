#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the postgres-route tests
# and the pgbench benchmark.
#
#   scripts/postgres.sh start [DIR] [PORT]   initdb (first time) + start; prints the URL
#   scripts/postgres.sh stop  [DIR]          stop the cluster
#
# The cluster listens on 127.0.0.1 only, with a password user `tracehop`
# authenticated by SCRAM-SHA-256 (so the route's SCRAM pass-through is
# exercised), database `tracehop`. PostgreSQL refuses to run as root, so
# the server runs as the `postgres` user (Debian's `postgresql` package).
# The URL printed is what TRACEHOP_TEST_POSTGRES expects.
set -euo pipefail

cmd=${1:-}
dir=${2:-/tmp/tracehop-postgres}
port=${3:-55432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "postgres.sh: PostgreSQL server not installed (apt-get install postgresql)" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    if [ ! -s "$dir/data/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      pwfile="$dir/pw"
      echo postgres > "$pwfile"
      [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
      as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 > "$dir/initdb.log"
      cat >> "$dir/data/postgresql.conf" << EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
password_encryption = 'scram-sha-256'
max_connections = 100
fsync = off
EOF
      cat > "$dir/data/pg_hba.conf" << 'EOF'
local all all trust
host all all 127.0.0.1/32 scram-sha-256
EOF
    fi
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start > /dev/null
    as_postgres psql -h "$dir" -p "$port" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 << 'EOF' > /dev/null
SELECT 'CREATE ROLE tracehop LOGIN PASSWORD ''tracehop'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tracehop') \gexec
SELECT 'CREATE DATABASE tracehop OWNER tracehop'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'tracehop') \gexec
EOF
    echo "postgres://tracehop:tracehop@127.0.0.1:$port/tracehop"
    ;;
  stop)
    [ -d "$dir/data" ] && as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast stop > /dev/null || true
    ;;
  *)
    echo "usage: $0 start|stop [DIR] [PORT]" >&2
    exit 2
    ;;
esac
