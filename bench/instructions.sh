#!/usr/bin/env bash
# instructions.sh: user-space instructions per proxied request, counted by
# valgrind's callgrind: tracehop (sampling 0 and 1) against nginx as a
# reverse proxy, in front of the same nginx `return 200` upstream.
#
# Unlike req/s and CPU time, an instruction count does not depend on what
# else the machine is doing, so this is the repeatable companion of
# compare.sh on a shared machine. Each target runs under callgrind twice,
# with N1 and N2 requests (oha, 16 connections); (Ir(N2) - Ir(N1)) / (N2 - N1)
# is the cost of one request with start-up and shutdown cancelled out.
# Kernel work (the syscalls themselves) is not counted: compare.sh measures
# that. tracehop-on's count includes its exporter encoding and sending
# every span (to an nginx answering 202).
#
# Usage: bench/instructions.sh [--requests N1,N2] [--port-base P (uses P..P+5)] [--no-build]
#        [--h2c]   (HTTP/2 with prior knowledge downstream, h2load with 4
#        connections of 10 streams each, instead of HTTP/1.1 and oha)
#        [--binary PATH]   (measure this tracehop instead of the profile-guided
#        build the image ships, target/pgo/tracehop, which scripts/pgo-build.sh
#        makes unless --no-build or --binary)
#        [--cache-sim]   (also simulate the caches, callgrind --cache-sim=yes,
#        and report L1 instruction and data misses per request: what an
#        instruction count does not show, e.g. code layout)
#        [--tracehop-args "FLAGS"]   (extra `tracehop run` flags for both
#        tracehop targets, e.g. "--infer-parents off" to compare a setting)
#        KEEP_WORK=1 keeps the callgrind files (callgrind_annotate them).
# Needs: valgrind, nginx, oha, curl. Everything listens on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
N1=4000 N2=24000 PORT_BASE=18280 BUILD=1 BINARY= EXTRA= H2C=0 CACHE=no

die() { echo "instructions.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) N1="${2%%,*}"; N2="${2##*,}"; shift 2 ;;
    --port-base) PORT_BASE="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --binary) BINARY="$2"; BUILD=0; shift 2 ;;
    --tracehop-args) EXTRA="$2"; shift 2 ;;
    --h2c) H2C=1; shift ;;
    --cache-sim) CACHE=yes; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ "$N2" -gt "$N1" ] || die "--requests N1,N2 needs N2 > N1"
for tool in valgrind nginx curl $([ "$H2C" = 1 ] && echo h2load); do command -v "$tool" >/dev/null || die "missing: $tool"; done
OHA="${OHA:-$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")}"
[ -x "$OHA" ] || die "missing: oha (cargo install oha --locked)"
if [ "$BUILD" = 1 ]; then "$ROOT/scripts/pgo-build.sh" > /dev/null || die "scripts/pgo-build.sh failed"; fi
TRACEHOP="${BINARY:-$ROOT/target/pgo/tracehop}"
[ -x "$TRACEHOP" ] || die "$TRACEHOP not found (build it, or drop --no-build)"

UPSTREAM=$PORT_BASE SINK=$((PORT_BASE + 1)) PROXY=$((PORT_BASE + 2)) ADMIN=$((PORT_BASE + 3))
# nginx serves h2c on a listener of its own (tracehop on its one port).
NGINX_H2C=$((PORT_BASE + 5))
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "instructions.sh: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

render() {  # TEMPLATE OUTFILE KEY=VALUE...
  local text; text="$(cat "$BENCH/templates/$1")"; local out="$2"; shift 2
  for kv in "$@"; do text="${text//@${kv%%=*}@/${kv#*=}}"; done
  printf '%s\n' "$text" > "$out"
}
wait_http() {
  for _ in $(seq 300); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  die "nothing answers on 127.0.0.1:$1"
}
nginx_conf() {  # NAME TEMPLATE PORT KEY=VALUE... : config path on stdout
  local dir="$WORK/$1"; mkdir -p "$dir"
  render "$2" "$dir/nginx.conf" "DIR=$dir" "PORT=$3" "${@:4}"
  echo "$dir/nginx.conf"
}

upstream_conf="$(nginx_conf upstream nginx-static.conf "$UPSTREAM" STATUS=200)"
nginx -p "$WORK/upstream/" -c "$upstream_conf" > /dev/null 2>&1 & PIDS+=($!)
sink_conf="$(nginx_conf sink nginx-static.conf "$SINK" STATUS=202)"
nginx -p "$WORK/sink/" -c "$sink_conf" > /dev/null 2>&1 & PIDS+=($!)
wait_http "$UPSTREAM"; wait_http "$SINK"
# nginx as the proxy under callgrind: one process, no master.
proxy_conf="$(nginx_conf proxy nginx-proxy.conf "$PROXY" "UPSTREAM=127.0.0.1:$UPSTREAM" ACCESS_LOG=off)"
sed -i 's/^worker_processes 1;/worker_processes 1;\nmaster_process off;/' "$proxy_conf"
# Its plain HTTP/1.1 and h2c listeners only: no certificate; the access-log
# server gets a port of its own.
sed -i -e '/@TLS_PORT@\|ssl_/d' -e "s/@H2C_PORT@/$NGINX_H2C/" \
  -e "s/@LOG_PORT@/$((PORT_BASE + 4))/" "$proxy_conf"

load() {  # NAME REQUESTS: the requests, all of which must succeed
  local out="$WORK/$1.$2.load" port="$PROXY"
  if [ "$H2C" = 1 ]; then
    [ "$1" = nginx ] && port="$NGINX_H2C"
    h2load -n "$2" -c 4 -m 10 "http://127.0.0.1:$port/" > "$out" 2>&1
    grep -q "requests: $2 total, $2 started, $2 done, $2 succeeded" "$out"
  else
    "$OHA" -n "$2" -c 16 --no-tui "http://127.0.0.1:$port/" > "$out" 2>&1
    grep -q "Success rate:.*100.00%" "$out"
  fi || die "$1: requests failed ($out)"
}
# The events of callgrind's summary line that are reported: Ir, and with the
# cache simulation I1mr (L1 instruction misses), D1mr and D1mw (L1 data read
# and write misses).
EVENTS=(Ir); [ "$CACHE" = yes ] && EVENTS+=(I1mr D1mr D1mw)
run() {  # NAME REQUESTS COMMAND... : the EVENTS of the whole process, space-separated
  local name="$1" n="$2" out="$WORK/$1.$2.cg"; shift 2
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --cache-sim="$CACHE" --callgrind-out-file="$out" "$@" \
    > "$WORK/$name.$n.log" 2>&1 &
  local pid=$!
  wait_http "$PROXY"
  load "$name" "$n"
  sleep 1.5   # tracehop-on: the last export batch goes out (1 s flush interval)
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk -v want="${EVENTS[*]}" '
    /^events:/ { for (i = 2; i <= NF; i++) column[$i] = i }
    /^summary:/ { n = split(want, w, " "); for (i = 1; i <= n; i++) printf "%s%s", $column[w[i]], (i < n ? " " : "\n") }' "$out"
}
tracehop() {  # RATIO
  echo "$TRACEHOP" run --config "$BENCH/templates/tracehop.yaml" \
    --listen "127.0.0.1:$PROXY" --upstream "http://127.0.0.1:$UPSTREAM" --admin "127.0.0.1:$ADMIN" \
    --service-name bench --sample-ratio "$1" --zipkin "http://127.0.0.1:$SINK/api/v2/spans" $EXTRA
}

declare -A PER   # "TARGET.EVENT" -> per request
for target in nginx tracehop-off tracehop-on; do
  case "$target" in
    nginx) cmd=(nginx -p "$WORK/proxy/" -c "$proxy_conf") ;;
    tracehop-off) read -ra cmd <<< "$(tracehop 0)" ;;
    tracehop-on) read -ra cmd <<< "$(tracehop 1)" ;;
  esac
  read -ra at1 <<< "$(run "$target" "$N1" "${cmd[@]}")"
  read -ra at2 <<< "$(run "$target" "$N2" "${cmd[@]}")"
  for i in "${!EVENTS[@]}"; do
    PER[$target.${EVENTS[$i]}]=$(( (at2[i] - at1[i]) / (N2 - N1) ))
  done
  echo "instructions.sh: $target: ${at1[0]} Ir for $N1 requests, ${at2[0]} Ir for $N2" >&2
done

echo "### User-space instructions per request (callgrind)"
echo
echo "$((N2 - N1)) requests counted (Ir with $N2 requests minus Ir with $N1), $([ "$H2C" = 1 ] && echo "h2c: h2load with 4 connections of 10 streams" || echo "oha with 16 connections"); one worker; tracehop $("$TRACEHOP" --version | awk '{print $2}') ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)), $(nginx -v 2>&1 | sed 's/.*: //')${EXTRA:+; tracehop flags: $EXTRA}."
echo
times_nginx() { awk -v a="${PER[$1.$2]}" -v b="${PER[nginx.$2]}" 'BEGIN{printf "%.2f", b ? a/b : 0}'; }
echo "| target | instructions / request | × nginx |"
echo "|---|---|---|"
for target in nginx tracehop-off tracehop-on; do
  printf '| %s | %s | %s |\n' "$target" "${PER[$target.Ir]}" "$(times_nginx "$target" Ir)"
done
if [ "$CACHE" = yes ]; then
  echo
  echo "L1 misses per request (callgrind's cache model of this CPU's caches, no prefetching):"
  echo
  echo "| target | I1 misses | × nginx | D1 read misses | D1 write misses | D1 × nginx |"
  echo "|---|---|---|---|---|---|"
  for target in nginx tracehop-off tracehop-on; do PER[$target.D1]=$((PER[$target.D1mr] + PER[$target.D1mw])); done
  for target in nginx tracehop-off tracehop-on; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "${PER[$target.I1mr]}" "$(times_nginx "$target" I1mr)" \
      "${PER[$target.D1mr]}" "${PER[$target.D1mw]}" "$(times_nginx "$target" D1)"
  done
fi
