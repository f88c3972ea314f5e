#!/usr/bin/env bash
# pgbench.sh: PostgreSQL through tracehop's postgres route vs direct, in
# one run, every query traced (sampling `always`, every span exported to a
# local span sink: nginx answering 202, as compare.sh does, or `tracehop
# collector` when nginx is missing). The sidecar runs one worker thread
# (TOKIO_WORKER_THREADS=1, a sidecar with a CPU limit of 1).
#
# Targets: direct (the database itself), route (tracehop's postgres route)
# and, when haproxy is installed, relay: haproxy in TCP mode with one thread,
# a pure byte relay that parses and records nothing. relay / direct is what
# any proxy's extra hop costs on this machine; route / relay is what
# tracehop adds over such a relay.
#
# Loads, interleaved in rounds (every target back to back, the order rotating
# each round, so drift on a shared machine hits all alike):
#   select-only   pgbench -S -c CLIENTS -j 2 -T SECONDS      (the bar: route >= 0.90 x direct)
#   tpc-b         pgbench    -c CLIENTS -j 2 -T SECONDS      (pgbench's default TPC-B-like run)
# Prints one markdown row per load: median TPS of each target, the medians
# of the per-round ratios, and how many queries the sidecar counted and
# spans it exported against the transactions pgbench reports. Ends with the
# sidecar's peak memory.
#
# Usage: bench/pgbench.sh [--seconds S] [--rounds N] [--clients C] [--scale K]
#                         [--url postgres://user:pw@127.0.0.1:PORT/db] [--bin PATH]
# Without --url (or TRACEHOP_TEST_POSTGRES) a throwaway cluster is started
# with scripts/postgres.sh (Debian's postgresql package) and stopped at exit.
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=20 rounds=2 clients=8 scale=10
url=${TRACEHOP_TEST_POSTGRES:-}
bin=$root/target/release/tracehop
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "pgbench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v pgbench > /dev/null || { echo "pgbench.sh: pgbench missing (apt-get install postgresql-client)" >&2; exit 1; }
[ -x "$bin" ] || (cd "$root" && cargo build --release --locked -q)

work=$(mktemp -d)
chmod 755 "$work" # a cluster started here runs as the postgres user
pids=()
own_cluster=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  [ -z "$own_cluster" ] || bash "$root/scripts/postgres.sh" stop "$own_cluster"
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0; sleep 0.05; done
  echo "pgbench.sh: nothing listens on port $1" >&2; exit 1
}

if [ -z "$url" ]; then
  own_cluster=$work/cluster
  url=$(bash "$root/scripts/postgres.sh" start "$own_cluster" "$(free_port)")
fi
# host:port of the database, and the same URL pointed at the route.
upstream=$(python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(f"{p.hostname}:{p.port or 5432}")' "$url")
via() { python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); a=p.netloc.rsplit("@",1); print(u.urlunsplit(p._replace(netloc=(a[0]+"@" if len(a)>1 else "")+"127.0.0.1:"+sys.argv[2])))' "$url" "$1"; }

collector=$(free_port) route=$(free_port) admin=$(free_port) relay=$(free_port)
targets="direct route"
if command -v haproxy > /dev/null; then
  cat > "$work/haproxy.cfg" << EOF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend pg
  bind 127.0.0.1:$relay
  default_backend db
backend db
  server db $upstream
EOF
  haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 & pids+=($!)
  targets="direct route relay"
else
  echo "pgbench.sh: haproxy missing: no pure-relay reference (apt-get install haproxy)" >&2
fi
if command -v nginx > /dev/null; then
  mkdir -p "$work/nginx"
  sed -e "s|@DIR@|$work/nginx|g" -e "s|@PORT@|$collector|g" -e "s|@STATUS@|202|g" \
    "$root/bench/templates/nginx-static.conf" > "$work/nginx/nginx.conf"
  nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" 2> "$work/nginx.log" & pids+=($!)
else
  "$bin" collector --listen "127.0.0.1:$collector" --max-spans 100000 2> "$work/collector.log" & pids+=($!)
fi
cat > "$work/sidecar.yaml" << EOF
service: {name: pgbench}
inbound: {listen: "127.0.0.1:$(free_port)", upstream: "http://127.0.0.1:9"}
outbound:
  routes:
    - {name: bench-db, protocol: postgres, listen: "127.0.0.1:$route", upstream: "tcp://$upstream"}
admin: {listen: "127.0.0.1:$admin"}
sampling: {root: {type: always}}
export: {zipkin: "http://127.0.0.1:$collector/api/v2/spans", queue_capacity: 16384, batch_size: 1024}
log: {access_log: false}
EOF
TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-1} "$bin" run --config "$work/sidecar.yaml" 2> "$work/sidecar.log" & pids+=($!)
sidecar_pid=$!
wait_port "$collector"; wait_port "$route"; wait_port "$admin"
case $targets in *relay*) wait_port "$relay" ;; esac
direct_url=$url route_url=$(via "$route") relay_url=$(via "$relay")

echo "pgbench.sh: initialising (scale $scale) ..." >&2
pgbench -i -q -s "$scale" "$direct_url" > "$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }

metric() { # NAME: the sum of a metric family on the sidecar's /metrics
  curl -sf "http://127.0.0.1:$admin/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $2 } END { printf "%d\n", s }'
}
run() { # URL FLAGS: prints "tps transactions"
  local out
  out=$(pgbench $2 -n -c "$clients" -j 2 -T "$seconds" "$1" 2>&1) || { echo "$out" >&2; exit 1; }
  echo "$(echo "$out" | awk '/^tps = / { print $3; exit }') $(echo "$out" | awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1]; exit }')"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a / b }'; }
if [ "$targets" = "direct route relay" ]; then
  echo "| load | direct TPS | through the route TPS | route / direct | haproxy TCP relay TPS | relay / direct | route / relay | queries counted / expected | spans exported |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
else
  echo "| load | direct TPS | through the route TPS | route / direct | queries counted / expected | spans exported |"
  echo "|---|---:|---:|---:|---:|---:|"
fi
for load in select-only tpc-b; do
  case $load in select-only) flags=-S; per_tx=1 ;; tpc-b) flags= ; per_tx=7 ;; esac
  for f in direct route relay route-direct relay-direct route-relay; do : > "$work/$f"; done
  expected=0
  queries_before=$(metric tracehop_db_queries_total)
  spans_before=$(metric tracehop_spans_exported_total)
  read -r -a order <<< "$targets"
  for r in $(seq "$rounds"); do
    declare -A tps_of=()
    for target in "${order[@]}"; do
      case $target in direct) target_url=$direct_url ;; route) target_url=$route_url ;; relay) target_url=$relay_url ;; esac
      read -r tps tx <<< "$(run "$target_url" "$flags")"
      echo "$tps" >> "$work/$target"
      tps_of[$target]=$tps
      [ "$target" = route ] && expected=$((expected + tx * per_tx))
      echo "pgbench.sh: $load round $r $target: $tps tps" >&2
    done
    order=("${order[@]:1}" "${order[0]}")
    ratio "${tps_of[route]}" "${tps_of[direct]}" >> "$work/route-direct"
    if [ -n "${tps_of[relay]:-}" ]; then
      ratio "${tps_of[relay]}" "${tps_of[direct]}" >> "$work/relay-direct"
      ratio "${tps_of[route]}" "${tps_of[relay]}" >> "$work/route-relay"
    fi
  done
  # Let the last spans reach the collector.
  sleep 2
  queries=$(( $(metric tracehop_db_queries_total) - queries_before ))
  spans=$(( $(metric tracehop_spans_exported_total) - spans_before ))
  relay_columns=
  if [ -s "$work/relay" ]; then
    relay_columns=$(printf ' %.0f | %.3f | %.3f |' "$(median < "$work/relay")" \
      "$(median < "$work/relay-direct")" "$(median < "$work/route-relay")")
  fi
  printf '| %s (`pgbench %s-c %s -T %s`) | %.0f | %.0f | %.3f |%s %d / %d | %d |\n' \
    "$load" "${flags:+$flags }" "$clients" "$seconds" "$(median < "$work/direct")" \
    "$(median < "$work/route")" "$(median < "$work/route-direct")" "$relay_columns" \
    "$queries" "$expected" "$spans"
done
peak=$(awk '/VmHWM/ { print $2 }' "/proc/$sidecar_pid/status" 2> /dev/null || echo "?")
echo
echo "sidecar peak memory (VmHWM): ${peak} KiB; dropped spans: $(metric tracehop_spans_dropped_total)"
