#!/usr/bin/env bash
# compare.sh: end-to-end comparison of tracehop against its upstream hit
# directly, nginx and haproxy, on loopback.
#
# Targets (all in front of the same nginx `return 200` upstream):
#   direct        the upstream itself (the baseline for added latency)
#   tracehop-off  tracehop, sampling ratio 0 (no spans)
#   tracehop-on   tracehop, sampling ratio 1, exporting every span to a local
#                 sink (nginx answering 202 to POST /api/v2/spans)
#   nginx         nginx proxy_pass with upstream keepalive
#   haproxy       haproxy in http mode
# Every proxy has one worker (TOKIO_WORKER_THREADS=1 for tracehop). The load
# generator is pinned to --client-cpu, every server to --server-cpu.
#
# Loads, per round and in this order: saturating (wrk, --conns connections),
# then each fixed rate of --rates with oha (-q R --latency-correction). Within
# one load the targets run back to back, the starting target rotating every
# round, so drift on a shared machine hits every target alike; ratios and
# added latencies are taken within a round, then their median over rounds.
#
# Usage: bench/compare.sh [options]
#   --duration S       seconds per measured run (default 10)
#   --rounds N         interleaved rounds (default 3)
#   --rates LIST       comma list of fixed rates in req/s (default 5000,20000;
#                      "none" skips the fixed-rate runs)
#   --conns C          wrk connections for the saturating load (default 64)
#   --rate-conns C     oha connections for the fixed rates (default 32)
#   --warmup S         unrecorded wrk warm-up per target (default 3)
#   --quick            smoke run of about 2 minutes: 1 round, 4 s runs, 1 s warm-up
#   --access-log       every proxy writes an access line per request to a file:
#                      nginx `access_log FILE combined buffer=64k flush=1s`, haproxy
#                      `option httplog` to its stdout, tracehop
#                      `log.access_log: true` (bench/templates/tracehop-access.yaml)
#   --nice N           raise the benchmark's CPU weight on a shared machine, e.g.
#                      -10: sets this session's autogroup nice (restored on exit)
#                      and renices every client and server thread. Start the
#                      script with `setsid` so only the benchmark is boosted.
#   --client-cpu C     CPU for the load generator (default 0)
#   --server-cpu C     CPU for upstream, sink and proxies (default 1)
#   --port-base P      first of the ports used on 127.0.0.1 (default 18080; uses P..P+7, P+100..P+101)
#   --no-build         use the existing target/release/tracehop
#   --no-install       never install missing tools; say what is missing instead
#   --out DIR          results directory (default bench/results/<timestamp>)
#   --report DIR       only re-render DIR/summary.md from DIR's raw results
#   -h, --help         this text
#
# Needs: nginx, haproxy, wrk (Debian: nginx-light haproxy wrk), oha
# (cargo install oha --locked), python3, curl, taskset, ss. Missing ones are
# installed when possible (apt-get as root, cargo for oha) unless --no-install.
# Every process started here listens on 127.0.0.1 only and is stopped, by its
# own pid, on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
DURATION=10 ROUNDS=3 RATES="5000,20000" CONNS=64 RATE_CONNS=32 WARMUP=3
ACCESS_LOG=0 NICE="" CLIENT_CPU=0 SERVER_CPU=1 PORT_BASE=18080 BUILD=1 INSTALL=1 OUT="" REPORT_ONLY=""
SETTLE=1.2   # seconds after a run before reading CPU: lets tracehop's 1 s export batch go out

die() { echo "compare.sh: $*" >&2; exit 2; }
note() { echo "compare.sh: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rates) RATES="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --rate-conns) RATE_CONNS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --quick) ROUNDS=1; DURATION=4; WARMUP=1; shift ;;
    --access-log) ACCESS_LOG=1; shift ;;
    --nice) NICE="$2"; shift 2 ;;
    --client-cpu) CLIENT_CPU="$2"; shift 2 ;;
    --server-cpu) SERVER_CPU="$2"; shift 2 ;;
    --port-base) PORT_BASE="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-install) INSTALL=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --report) REPORT_ONLY="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ "$RATES" = none ] && RATES=""
for n in "$DURATION" "$ROUNDS" "$CONNS" "$RATE_CONNS" "$WARMUP" "$PORT_BASE"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "expected a whole number, got '$n'"
done
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] || die "--rounds and --duration must be at least 1"

if [ -n "$REPORT_ONLY" ]; then
  python3 "$BENCH/report.py" "$REPORT_ONLY" > "$REPORT_ONLY/summary.md"
  cat "$REPORT_ONLY/summary.md"; exit 0
fi

# ---- tools ----------------------------------------------------------------------------
apt_install() {  # PACKAGE... : install with apt-get when allowed, else explain
  if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    note "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } \
      || die "apt-get install $* failed"
  else
    die "missing: $* (install them: apt-get install -y $*)"
  fi
}
command -v nginx >/dev/null || apt_install nginx-light
command -v haproxy >/dev/null || apt_install haproxy
command -v wrk >/dev/null || apt_install wrk
for tool in python3 curl taskset ss; do command -v "$tool" >/dev/null || die "missing: $tool"; done
OHA="${OHA:-$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")}"
if [ -n "$RATES" ] && [ ! -x "$OHA" ]; then
  [ "$INSTALL" = 1 ] || die "missing: oha (cargo install oha --locked), or pass --rates none"
  note "installing oha (cargo install oha --locked; takes a few minutes)"
  cargo install oha --locked --quiet || die "cargo install oha failed"
fi

if [ "$BUILD" = 1 ]; then (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"; fi
TRACEHOP="$ROOT/target/release/tracehop"
[ -x "$TRACEHOP" ] || die "$TRACEHOP not found (build it, or drop --no-build)"

# ---- layout ---------------------------------------------------------------------------
UPSTREAM_PORT=$PORT_BASE
SINK_PORT=$((PORT_BASE + 7))
NAMES=(direct tracehop-off tracehop-on nginx haproxy)
declare -A PORT=([direct]=$UPSTREAM_PORT [tracehop-off]=$((PORT_BASE + 1)) [tracehop-on]=$((PORT_BASE + 2))
                 [nginx]=$((PORT_BASE + 3)) [haproxy]=$((PORT_BASE + 4)))
declare -A PIDS ADMIN=([tracehop-off]=$((PORT_BASE + 101)) [tracehop-on]=$((PORT_BASE + 102)))
OUT="${OUT:-$BENCH/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/raw" "$OUT/run"
OUT="$(cd "$OUT" && pwd)"   # nginx and haproxy get absolute paths
CLK_TCK="$(getconf CLK_TCK)"
STARTED=()
AUTOGROUP_OLD=""

cleanup() {
  local pid alive
  for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${STARTED[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -z "$AUTOGROUP_OLD" ] || echo "$AUTOGROUP_OLD" > /proc/self/autogroup 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

render() {  # TEMPLATE OUTFILE KEY=VALUE... : fill @KEY@ placeholders
  local template="$1" out="$2" text; shift 2
  text="$(cat "$BENCH/templates/$template")"
  for kv in "$@"; do text="${text//@${kv%%=*}@/${kv#*=}}"; done
  printf '%s\n' "$text" > "$out"
}
port_free() { [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
wait_http() {  # PORT : until something answers HTTP there (10 s at most)
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  die "nothing answers on 127.0.0.1:$1 (logs: $OUT/raw/*.log)"
}
start() {  # NAME PORT COMMAND... : start in the background, record its pid and its children's
  local name="$1" port="$2"; shift 2
  port_free "$port" || die "port $port is taken (for $name); try --port-base"
  echo "$name: $*" >> "$OUT/commands.txt"
  "$@" > "$OUT/raw/$name.log" 2>&1 &
  STARTED+=("$!")
  wait_http "$port"
  PIDS[$name]="$! $( (ps -o pid= --ppid "$!" || true) | tr '\n' ' ')"
}
start_nginx() {  # NAME PORT TEMPLATE KEY=VALUE...
  local name="$1" port="$2" template="$3" dir="$OUT/run/$1"; shift 3
  mkdir -p "$dir"
  render "$template" "$dir/nginx.conf" "DIR=$dir" "PORT=$port" "$@"
  start "$name" "$port" nginx -p "$dir/" -c "$dir/nginx.conf"
}
TRACEHOP_CONFIG_FILE="$BENCH/templates/tracehop.yaml"
NGINX_ACCESS_LOG=off HAPROXY_GLOBAL_LOG="" HAPROXY_DEFAULTS_LOG=""
if [ "$ACCESS_LOG" = 1 ]; then
  TRACEHOP_CONFIG_FILE="$BENCH/templates/tracehop-access.yaml"
  NGINX_ACCESS_LOG="$OUT/run/nginx/access.log combined buffer=64k flush=1s"
  HAPROXY_GLOBAL_LOG="  log stdout format raw local0"
  HAPROXY_DEFAULTS_LOG="  log global
  option httplog"
fi
start_tracehop() {  # NAME RATIO
  start "$1" "${PORT[$1]}" env TOKIO_WORKER_THREADS=1 "$TRACEHOP" run \
    --config "$TRACEHOP_CONFIG_FILE" --listen "127.0.0.1:${PORT[$1]}" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --admin "127.0.0.1:${ADMIN[$1]}" \
    --service-name bench --sample-ratio "$2" --zipkin "http://127.0.0.1:$SINK_PORT/api/v2/spans"
}

start_nginx upstream "$UPSTREAM_PORT" nginx-static.conf STATUS=200
PIDS[direct]="${PIDS[upstream]}"
start_nginx sink "$SINK_PORT" nginx-static.conf STATUS=202
start_tracehop tracehop-off 0
start_tracehop tracehop-on 1
start_nginx nginx "${PORT[nginx]}" nginx-proxy.conf "UPSTREAM=127.0.0.1:$UPSTREAM_PORT" \
  "ACCESS_LOG=$NGINX_ACCESS_LOG"
mkdir -p "$OUT/run/haproxy"
render haproxy.cfg "$OUT/run/haproxy/haproxy.cfg" "PORT=${PORT[haproxy]}" "UPSTREAM=127.0.0.1:$UPSTREAM_PORT" \
  "GLOBAL_LOG=$HAPROXY_GLOBAL_LOG" "DEFAULTS_LOG=$HAPROXY_DEFAULTS_LOG"
start haproxy "${PORT[haproxy]}" haproxy -db -f "$OUT/run/haproxy/haproxy.cfg"
cp "$OUT"/run/*/*.conf "$OUT"/run/haproxy/haproxy.cfg "$OUT/raw/" 2>/dev/null || true

# ---- placement and priority ------------------------------------------------------------
if [ -n "$NICE" ] && [ -w /proc/self/autogroup ]; then
  # With autogroup scheduling, per-process nice only acts within a session;
  # the session's own weight is this file.
  AUTOGROUP_OLD="$(awk '{print $NF}' /proc/self/autogroup)"
  echo "$NICE" > /proc/self/autogroup 2>/dev/null || AUTOGROUP_OLD=""
fi
CLIENT=(taskset -c "$CLIENT_CPU")
[ -z "$NICE" ] || CLIENT=(nice -n "$NICE" "${CLIENT[@]}")
place_servers() {  # pin every server thread to the server CPU, renice them (threads may appear late)
  local pid task
  for pid in ${PIDS[*]}; do
    taskset -a -p -c "$SERVER_CPU" "$pid" > /dev/null 2>&1 || true
    [ -z "$NICE" ] && continue
    for task in /proc/"$pid"/task/*; do renice -n "$NICE" -p "${task##*/}" > /dev/null 2>&1 || true; done
  done
}

# ---- measurement helpers --------------------------------------------------------------
cpu_ticks() {  # PID... : utime+stime of all their threads, in clock ticks
  local total=0 pid fields
  for pid in "$@"; do
    fields="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null)" || continue
    total=$((total + $(awk '{print $12 + $13}' <<< "$fields")))
  done
  echo "$total"
}
rss_kb() {  # PID... : summed VmRSS
  local total=0 pid kb
  for pid in "$@"; do
    kb="$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null)" || kb=0
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
tracehop_counters() {  # NAME : export counters from the admin listener
  curl -s --max-time 2 "http://127.0.0.1:${ADMIN[$1]}/metrics" \
    | grep -E '^tracehop_(spans_exported_total|spans_dropped_total|requests_total|upstream_errors_total)' || true
}

# The client runs in a subshell whose `times` reports its children's CPU time:
# the load generator's own cost, to tell the benchmark's CPU from the noise.
run_client() {  # OUTFILE COMMAND...
  local out="$1"; shift
  ( timeout $((DURATION + 30)) "${CLIENT[@]}" "$@" > "$out" 2>&1 || true
    times > "$out.cpu" )
}

RUNS="$OUT/runs.tsv"
printf 'round\tload\ttarget\traw\ttarget_ticks\tupstream_ticks\tsink_ticks\tbusy_ticks\ttotal_ticks\trss_load_kb\n' > "$RUNS"

measure() {  # ROUND LOAD TARGET : one recorded run
  local round="$1" load="$2" name="$3" url="http://127.0.0.1:${PORT[$3]}/"
  local raw="$OUT/raw/r${round}-${load/:/}-${name}.txt" t0 t1 u0 u1 k0 k1 b0 b1 rss_file
  t0=$(cpu_ticks ${PIDS[$name]}); u0=$(cpu_ticks ${PIDS[upstream]}); k0=$(cpu_ticks ${PIDS[sink]})
  b0=$(busy_ticks)
  rss_file="$raw.rss"
  ( sleep "$((DURATION / 2)).5"; rss_kb ${PIDS[$name]} > "$rss_file" ) &
  local sampler=$!
  if [ "$load" = sat ]; then
    run_client "$raw" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$BENCH/templates/wrk-result.lua" "$url"
  else
    run_client "$raw" "$OHA" -z "${DURATION}s" -c "$RATE_CONNS" -q "${load#rate:}" \
      --latency-correction --no-tui --output-format json "$url"
  fi
  wait "$sampler" 2>/dev/null || true
  sleep "$SETTLE"
  t1=$(cpu_ticks ${PIDS[$name]}); u1=$(cpu_ticks ${PIDS[upstream]}); k1=$(cpu_ticks ${PIDS[sink]})
  b1=$(busy_ticks)
  read -r busy0 total0 <<< "$b0"; read -r busy1 total1 <<< "$b1"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$load" "$name" "${raw##*/}" \
    $((t1 - t0)) $((u1 - u0)) $((k1 - k0)) $((busy1 - busy0)) $((total1 - total0)) \
    "$(cat "$rss_file" 2>/dev/null || echo 0)" >> "$RUNS"
  printf '  round %s  %-10s %-13s %s\n' "$round" "$load" "$name" "$(python3 "$BENCH/report.py" --line "$raw")"
}

# ---- run ------------------------------------------------------------------------------
{
  echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus	$(nproc)"
  echo "cpu_model	$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  echo "kernel	$(uname -r)"
  echo "clk_tck	$CLK_TCK"
  echo "duration_s	$DURATION"
  echo "rounds	$ROUNDS"
  echo "conns	$CONNS"
  echo "rate_conns	$RATE_CONNS"
  echo "rates	${RATES:-none}"
  echo "settle_s	$SETTLE"
  echo "placement	client cpu $CLIENT_CPU, servers cpu $SERVER_CPU"
  echo "nice	${NICE:-none}"
  echo "access_log	$([ "$ACCESS_LOG" = 1 ] && echo "on in every proxy (to a file)" || echo off)"
  echo "tracehop	$("$TRACEHOP" --version) ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo "nginx	$(nginx -v 2>&1 | sed 's/.*: //')"
  echo "haproxy	$(haproxy -v 2>&1 | head -n 1)"
  echo "wrk	$(wrk -v 2>&1 | head -n 1)"
  [ -z "$RATES" ] || echo "oha	$("$OHA" --version)"
  echo "loadavg_start	$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/meta.tsv"
IDLE="$OUT/idle.tsv"
printf 'when\ttarget\trss_kb\n' > "$IDLE"
for n in "${NAMES[@]}"; do printf 'start\t%s\t%s\n' "$n" "$(rss_kb ${PIDS[$n]})" >> "$IDLE"; done

place_servers
echo "results: $OUT"
for n in "${NAMES[@]}"; do
  [ "$WARMUP" = 0 ] || "${CLIENT[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:${PORT[$n]}/" > /dev/null 2>&1 || true
done

LOADS=(sat)
IFS=',' read -r -a rate_list <<< "$RATES"
for rate in "${rate_list[@]}"; do LOADS+=("rate:$rate"); done
count=${#NAMES[@]}
for round in $(seq 1 "$ROUNDS"); do
  place_servers
  echo "round $round/$ROUNDS (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  for load in "${LOADS[@]}"; do
    for k in $(seq 0 $((count - 1))); do
      measure "$round" "$load" "${NAMES[$(( (k + round - 1) % count ))]}"
    done
  done
done

sleep 2   # let the last export batch go out before reading idle memory and counters
for n in "${NAMES[@]}"; do printf 'after\t%s\t%s\n' "$n" "$(rss_kb ${PIDS[$n]})" >> "$IDLE"; done
for n in tracehop-off tracehop-on; do tracehop_counters "$n" | sed "s/^/$n	/" >> "$OUT/tracehop-metrics.txt"; done
echo "loadavg_end	$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/meta.tsv"

python3 "$BENCH/report.py" "$OUT" > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
