#!/usr/bin/env bash
# pgbench.sh: PostgreSQL through tracehop's postgres route vs direct, in
# one run, every query traced (sampling `always`, every span exported to a
# local span sink: nginx answering 202, as compare.sh does, or `tracehop
# collector` when nginx is missing). The sidecar runs one worker thread
# (TOKIO_WORKER_THREADS=1, a sidecar with a CPU limit of 1).
#
# Loads, interleaved in rounds (direct then route, the order flipping each
# round, so drift on a shared machine hits both alike):
#   select-only   pgbench -S -c CLIENTS -j 2 -T SECONDS      (the bar: route >= 0.90 x direct)
#   tpc-b         pgbench    -c CLIENTS -j 2 -T SECONDS      (pgbench's default TPC-B-like run)
# Prints one markdown row per load: median TPS of each target, the median
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
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
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

collector=$(free_port) route=$(free_port) admin=$(free_port)
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
direct_url=$url route_url=$(via "$route")

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

echo "| load | direct TPS | through the route TPS | route / direct | queries counted / expected | spans exported |"
echo "|---|---:|---:|---:|---:|---:|"
for load in select-only tpc-b; do
  case $load in select-only) flags=-S; per_tx=1 ;; tpc-b) flags= ; per_tx=7 ;; esac
  : > "$work/direct" ; : > "$work/route" ; : > "$work/ratio"
  expected=0
  queries_before=$(metric tracehop_db_queries_total)
  spans_before=$(metric tracehop_spans_exported_total)
  for r in $(seq "$rounds"); do
    order="direct route"; [ $((r % 2)) -eq 0 ] && order="route direct"
    for target in $order; do
      target_url=$direct_url; [ "$target" = route ] && target_url=$route_url
      read -r tps tx <<< "$(run "$target_url" "$flags")"
      echo "$tps" >> "$work/$target"
      [ "$target" = route ] && { expected=$((expected + tx * per_tx)); route_tps=$tps; }
      [ "$target" = direct ] && direct_tps=$tps
      echo "pgbench.sh: $load round $r $target: $tps tps" >&2
    done
    awk -v a="$route_tps" -v b="$direct_tps" 'BEGIN { printf "%.3f\n", a / b }' >> "$work/ratio"
  done
  # Let the last spans reach the collector.
  sleep 2
  queries=$(( $(metric tracehop_db_queries_total) - queries_before ))
  spans=$(( $(metric tracehop_spans_exported_total) - spans_before ))
  printf '| %s (`pgbench %s-c %s -T %s`) | %.0f | %.0f | %.3f | %d / %d | %d |\n' \
    "$load" "${flags:+$flags }" "$clients" "$seconds" "$(median < "$work/direct")" \
    "$(median < "$work/route")" "$(median < "$work/ratio")" "$queries" "$expected" "$spans"
done
peak=$(awk '/VmHWM/ { print $2 }' "/proc/$sidecar_pid/status" 2> /dev/null || echo "?")
echo
echo "sidecar peak memory (VmHWM): ${peak} KiB; dropped spans: $(metric tracehop_spans_dropped_total)"
