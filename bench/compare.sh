#!/usr/bin/env bash
# compare.sh: end-to-end comparison of tracehop against its upstream hit
# directly, nginx, haproxy and Caddy, on loopback, over a mix of workloads.
#
# Workloads (--workloads; all of them by default, in this order):
#   get        keep-alive GET: saturating (wrk) and each rate of --rates
#   get-log    the same with an access log on in every proxy
#   close      a new connection per request (Connection: close)
#   64k, 1m    64 KiB and 1 MiB responses (MB/s, CPU per MB)
#   upload     16 KiB POST bodies
#   tls-h1     TLS 1.3, HTTP/1.1
#   h2c        HTTP/2 cleartext, prior knowledge (h2load, 16 conns × 10 streams)
#   tls-h2     TLS 1.3, HTTP/2 (ALPN), 16 conns × 10 streams
#   idle-10k   10,000 idle keep-alive connections held at once: RSS
# get also runs at each fixed rate of --rates, every other workload but 64k,
# 1m and idle-10k at those of --other-rates. Targets and their listeners: bench/targets.sh; the client
# of each workload: bench/workloads/*.sh. Every proxy has one worker
# (TOKIO_WORKER_THREADS=1, GOMAXPROCS=1). The load generator is pinned to
# --client-cpu, every server to --server-cpu.
#
# Rounds: each round runs every selected workload, each of its loads, every
# target back to back, the starting target rotating every round, so drift
# on a shared machine hits every target alike; ratios and added latencies are
# taken within a round, then their median over rounds.
#
# Usage: bench/compare.sh [options]
#   --workloads LIST   comma list of the workloads above (default: all)
#   --duration S       seconds per measured run (default 10)
#   --rounds N         interleaved rounds (default 3)
#   --rates LIST       fixed rates of the get workload in req/s (default
#                      5000,20000; "none" skips them)
#   --other-rates LIST fixed rates of the other workloads (default 5000; "none")
#   --conns C          wrk connections for the saturating loads (default 64)
#   --rate-conns C     oha connections for the fixed rates (default 32)
#   --idle-conns N     connections held by idle-10k (default 10000)
#   --warmup S         unrecorded wrk warm-up per target (default 3)
#   --quick            smoke run of everything in about 4 minutes: 1 round, 1 s
#                      runs, 1 s warm-up, every fixed rate 5,000 req/s
#   --access-log       the same as --workloads get-log
#   --nice N           raise the benchmark's CPU weight on a shared machine, e.g.
#                      -10: sets this session's autogroup nice (restored on exit)
#                      and renices every client and server thread. Start the
#                      script with `setsid` so only the benchmark is boosted.
#   --client-cpu C     CPU for the load generator (default 0)
#   --server-cpu C     CPU for upstream, sink and proxies (default 1)
#   --port-base P      first port used on 127.0.0.1 (default 18080; uses P..P+35 and P+100..P+135)
#   --no-build         use the existing target/pgo/tracehop (or --binary)
#   --binary PATH      measure this tracehop binary instead of the
#                      profile-guided build the image ships (built by
#                      scripts/pgo-build.sh unless --no-build), e.g.
#                      target/release/tracehop for a plain `cargo build`
#   --no-install       never install missing tools; say what is missing instead
#   --out DIR          results directory (default bench/results/<timestamp>)
#   --report DIR       only re-render DIR/summary.md from DIR's raw results
#   --readme DIR       write DIR's per-workload tables into README.md's
#                      performance section (between its bench markers)
#   -h, --help         this text
#
# Needs: nginx, haproxy, caddy, wrk, h2load, openssl (Debian: nginx-light
# haproxy caddy wrk nghttp2-client openssl), oha (cargo install oha --locked),
# python3, curl, taskset, ss. Missing ones are installed when possible
# (apt-get as root, cargo for oha) unless --no-install. Every process started
# here listens on 127.0.0.1 only and is stopped, by its own pid, on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
ALL_WORKLOADS="get,get-log,close,64k,1m,upload,tls-h1,h2c,tls-h2,idle-10k"
WORKLOAD_LIST="$ALL_WORKLOADS" DURATION=10 ROUNDS=3 RATES="5000,20000" OTHER_RATES=5000 CONNS=64
RATE_CONNS=32 IDLE_CONNS=10000 WARMUP=3 QUICK=0 NICE="" CLIENT_CPU=0 SERVER_CPU=1 PORT_BASE=18080
BUILD=1 BINARY="" INSTALL=1 OUT="" REPORT_ONLY="" README_FROM="" RATES_GIVEN=0
SETTLE=1.2   # seconds after a run before reading CPU: lets tracehop's 1 s export batch go out
COMMAND_LINE="bench/compare.sh"   # as given, less --out DIR: the reproduce line of the report
skip=0
for arg in "$@"; do
  if [ "$skip" = 1 ]; then skip=0; elif [ "$arg" = --out ]; then skip=1; else COMMAND_LINE+=" $arg"; fi
done

die() { echo "compare.sh: $*" >&2; exit 2; }
note() { echo "compare.sh: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --workloads) WORKLOAD_LIST="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rates) RATES="$2"; RATES_GIVEN=1; shift 2 ;;
    --other-rates) OTHER_RATES="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --rate-conns) RATE_CONNS="$2"; shift 2 ;;
    --idle-conns) IDLE_CONNS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --access-log) WORKLOAD_LIST=get-log; shift ;;
    --nice) NICE="$2"; shift 2 ;;
    --client-cpu) CLIENT_CPU="$2"; shift 2 ;;
    --server-cpu) SERVER_CPU="$2"; shift 2 ;;
    --port-base) PORT_BASE="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --binary) BINARY="$2"; BUILD=0; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --report) REPORT_ONLY="$2"; shift 2 ;;
    --readme) README_FROM="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  ROUNDS=1 DURATION=1 WARMUP=1
  [ "$RATES_GIVEN" = 1 ] || RATES=5000
fi
[ "$RATES" = none ] && RATES=""
[ "$OTHER_RATES" = none ] && OTHER_RATES=""
for n in "$DURATION" "$ROUNDS" "$CONNS" "$RATE_CONNS" "$IDLE_CONNS" "$WARMUP" "$PORT_BASE"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "expected a whole number, got '$n'"
done
for n in ${RATES//,/ } ${OTHER_RATES//,/ }; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "expected a rate in req/s, got '$n'"
done
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] || die "--rounds and --duration must be at least 1"

if [ -n "$REPORT_ONLY" ]; then
  python3 "$BENCH/report.py" "$REPORT_ONLY" > "$REPORT_ONLY/summary.md"
  cat "$REPORT_ONLY/summary.md"; exit 0
fi
if [ -n "$README_FROM" ]; then
  python3 "$BENCH/report.py" --readme "$README_FROM" "$ROOT/README.md"; exit
fi

# ---- workloads ------------------------------------------------------------------------
WORKLOADS=()
declare -A WL_LISTENER WL_PATH WL_BYTES WL_RATES WL_TITLE WL_TARGETS
define_workload() {  # NAME LISTENER PATH BYTES RATES TITLE [TARGETS]
  WORKLOADS+=("$1")
  WL_LISTENER[$1]="$2" WL_PATH[$1]="$3" WL_BYTES[$1]="$4" WL_RATES[$1]="$5" WL_TITLE[$1]="$6"
  WL_TARGETS[$1]="${7:-direct tracehop-on nginx haproxy caddy}"
}
for file in "$BENCH"/workloads/*.sh; do source "$file"; done
selected() { [[ ",$WORKLOAD_LIST," == *",$1,"* ]]; }
IFS=',' read -r -a chosen <<< "$WORKLOAD_LIST"
for w in "${chosen[@]}"; do
  [[ ",$ALL_WORKLOADS," == *",$w,"* ]] || die "unknown workload '$w' (known: $ALL_WORKLOADS)"
done

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
command -v caddy >/dev/null || apt_install caddy
command -v wrk >/dev/null || apt_install wrk
command -v h2load >/dev/null || apt_install nghttp2-client
command -v openssl >/dev/null || apt_install openssl
for tool in python3 curl taskset ss; do command -v "$tool" >/dev/null || die "missing: $tool"; done
OHA="${OHA:-$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")}"
if [ -n "$RATES$OTHER_RATES" ] && [ ! -x "$OHA" ]; then
  [ "$INSTALL" = 1 ] || die "missing: oha (cargo install oha --locked), or pass --rates none --other-rates none"
  note "installing oha (cargo install oha --locked; takes a few minutes)"
  cargo install oha --locked --quiet || die "cargo install oha failed"
fi
# idle-10k's client and every server hold IDLE_CONNS descriptors at once.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if selected idle-10k && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
  die "idle-10k needs an open-file limit of $((IDLE_CONNS + 1000)) (ulimit -n is $(ulimit -n)):" \
    "raise the hard limit, lower --idle-conns or leave idle-10k out of --workloads"
fi

# The profile-guided build, as the image ships it (scripts/pgo-build.sh).
if [ "$BUILD" = 1 ]; then
  pgo_missing="$("$ROOT/scripts/pgo-build.sh" --missing)"
  [ -z "$pgo_missing" ] || apt_install $pgo_missing
  "$ROOT/scripts/pgo-build.sh" >/dev/null || die "scripts/pgo-build.sh failed"
fi
TRACEHOP="${BINARY:-$ROOT/target/pgo/tracehop}"
[ -x "$TRACEHOP" ] || die "$TRACEHOP not found (build it, or drop --no-build)"

# ---- servers --------------------------------------------------------------------------
OUT="${OUT:-$BENCH/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/raw" "$OUT/run"
OUT="$(cd "$OUT" && pwd)"   # the servers get absolute paths
CLK_TCK="$(getconf CLK_TCK)"
STARTED=()
AUTOGROUP_OLD=""
declare -A ADMIN

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

source "$BENCH/targets.sh"
start_targets

# ---- placement and priority ------------------------------------------------------------
if [ -n "$NICE" ] && [ -w /proc/self/autogroup ]; then
  # With autogroup scheduling, per-process nice only acts within a session;
  # the session's own weight is this file.
  AUTOGROUP_OLD="$(awk '{print $NF}' /proc/self/autogroup)"
  echo "$NICE" > /proc/self/autogroup 2>/dev/null || AUTOGROUP_OLD=""
fi
CLIENT=(env OPENSSL_CONF="$CLIENT_OPENSSL_CONF" taskset -c "$CLIENT_CPU")
[ -z "$NICE" ] || CLIENT=(nice -n "$NICE" "${CLIENT[@]}")
place_servers() {  # pin every server thread to the server CPU, renice them (threads may appear late)
  local pid task
  for pid in ${PIDS[*]}; do
    taskset -a -p -c "$SERVER_CPU" "$pid" > /dev/null 2>&1 || true
    [ -z "$NICE" ] && continue
    for task in /proc/"$pid"/task/*; do renice -n "$NICE" -p "${task##*/}" > /dev/null 2>&1 || true; done
  done
}

# ---- measurement ----------------------------------------------------------------------
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
tracehop_counters() {  # PROCESS : export counters from its admin listener
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
WRK_RESULT="$BENCH/templates/wrk-result.lua"
OHA_RATE=("$OHA" -z "${DURATION}s" --latency-correction --no-tui --output-format json)

RUNS="$OUT/runs.tsv"
printf 'round\tworkload\tload\ttarget\traw\ttarget_ticks\tupstream_ticks\tsink_ticks\tbusy_ticks\ttotal_ticks\trss_load_kb\n' > "$RUNS"
IDLE10K="$OUT/idle10k.tsv"
printf 'round\ttarget\tconns\topened\tfailed\talive\tseconds\trss_before_kb\trss_idle_kb\n' > "$IDLE10K"

measure() {  # ROUND WORKLOAD LOAD TARGET : one recorded run
  local round="$1" wl="$2" load="$3" name="$4" url proc raw t0 t1 u0 u1 k0 k1 b0 b1 rss_file sampler
  url="$(url_of "$name" "${WL_LISTENER[$wl]}" "${WL_PATH[$wl]}")"
  proc="$(proc_of "$name" "${WL_LISTENER[$wl]}")"
  raw="$OUT/raw/r${round}-${wl}-${load/:/}-${name}.txt"
  t0=$(cpu_ticks ${PIDS[$proc]}); u0=$(cpu_ticks ${PIDS[upstream]}); k0=$(cpu_ticks ${PIDS[sink]})
  b0=$(busy_ticks)
  rss_file="$raw.rss"
  ( sleep "$((DURATION / 2)).5"; rss_kb ${PIDS[$proc]} > "$rss_file" ) &
  sampler=$!
  "wl_${wl//-/_}" "$load" "$url" "$raw"
  wait "$sampler" 2>/dev/null || true
  sleep "$SETTLE"
  t1=$(cpu_ticks ${PIDS[$proc]}); u1=$(cpu_ticks ${PIDS[upstream]}); k1=$(cpu_ticks ${PIDS[sink]})
  b1=$(busy_ticks)
  read -r busy0 total0 <<< "$b0"; read -r busy1 total1 <<< "$b1"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$wl" "$load" "$name" "${raw##*/}" \
    $((t1 - t0)) $((u1 - u0)) $((k1 - k0)) $((busy1 - busy0)) $((total1 - total0)) \
    "$(cat "$rss_file" 2>/dev/null || echo 0)" >> "$RUNS"
  printf '  round %s  %-10s %-10s %-13s %s\n' "$round" "$wl" "$load" "$name" \
    "$(python3 "$BENCH/report.py" --line "$raw")"
}

# ---- run ------------------------------------------------------------------------------
{
  echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command	$COMMAND_LINE"
  echo "cpus	$(nproc)"
  echo "cpu_model	$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  echo "kernel	$(uname -r)"
  echo "clk_tck	$CLK_TCK"
  echo "duration_s	$DURATION"
  echo "rounds	$ROUNDS"
  echo "conns	$CONNS"
  echo "rate_conns	$RATE_CONNS"
  echo "h2	$H2_CONNS connections × $H2_STREAMS streams"
  echo "idle_conns	$IDLE_CONNS"
  echo "rates	${RATES:-none}"
  echo "other_rates	${OTHER_RATES:-none}"
  echo "settle_s	$SETTLE"
  echo "placement	client cpu $CLIENT_CPU, servers cpu $SERVER_CPU"
  echo "nice	${NICE:-none}"
  echo "tracehop	$("$TRACEHOP" --version) ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo "nginx	$(nginx -v 2>&1 | sed 's/.*: //')"
  echo "haproxy	$(haproxy -v 2>&1 | head -n 1 | sed 's/ - https.*//')"
  echo "caddy	caddy $(caddy version | cut -d' ' -f1)"
  echo "wrk	$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')"
  echo "h2load	$(h2load --version | head -n 1)"
  [ -z "$RATES$OTHER_RATES" ] || echo "oha	$("$OHA" --version)"
  echo "loadavg_start	$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/meta.tsv"
{
  printf 'workload\ttitle\tlistener\tbytes\trates\ttargets\n'
  for w in "${WORKLOADS[@]}"; do
    selected "$w" || continue
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "${WL_TITLE[$w]}" "${WL_LISTENER[$w]}" "${WL_BYTES[$w]}" \
      "${WL_RATES[$w]}" "${WL_TARGETS[$w]}"
  done
} > "$OUT/workloads.tsv"
IDLE="$OUT/idle.tsv"
printf 'when\ttarget\trss_kb\n' > "$IDLE"
for n in "${NAMES[@]}"; do printf 'start\t%s\t%s\n' "$n" "$(rss_kb ${PIDS[$(proc_of "$n" plain)]})" >> "$IDLE"; done

place_servers
echo "results: $OUT"
warmups=()   # every process once: each target's plain listener, tracehop's log and TLS processes
for n in "${NAMES[@]}"; do warmups+=("$(url_of "$n" plain /)"); done
[ -z "${PIDS[tracehop-on-log]:-}" ] || warmups+=("$(url_of tracehop-on log /)")
[ -z "${PIDS[tracehop-on-tls]:-}" ] || warmups+=("$(url_of tracehop-on tls /)")
for url in "${warmups[@]}"; do
  [ "$WARMUP" = 0 ] || "${CLIENT[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" > /dev/null 2>&1 || true
done

for round in $(seq 1 "$ROUNDS"); do
  place_servers
  echo "round $round/$ROUNDS (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  for wl in "${WORKLOADS[@]}"; do
    selected "$wl" || continue
    read -r -a targets <<< "${WL_TARGETS[$wl]}"
    count=${#targets[@]}
    if [ "${WL_RATES[$wl]}" = idle ]; then
      for k in $(seq 0 $((count - 1))); do "wl_${wl//-/_}" "$round" "${targets[$(( (k + round - 1) % count ))]}"; done
      continue
    fi
    loads=(sat)
    IFS=',' read -r -a rate_list <<< "${WL_RATES[$wl]}"
    for rate in "${rate_list[@]}"; do loads+=("rate:$rate"); done
    for load in "${loads[@]}"; do
      for k in $(seq 0 $((count - 1))); do
        measure "$round" "$wl" "$load" "${targets[$(( (k + round - 1) % count ))]}"
      done
    done
  done
done

sleep 2   # let the last export batch go out before reading idle memory and counters
for n in "${NAMES[@]}"; do printf 'after\t%s\t%s\n' "$n" "$(rss_kb ${PIDS[$(proc_of "$n" plain)]})" >> "$IDLE"; done
for p in "${!ADMIN[@]}"; do tracehop_counters "$p" | sed "s/^/$p	/" >> "$OUT/tracehop-metrics.txt"; done
echo "loadavg_end	$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/meta.tsv"

python3 "$BENCH/report.py" "$OUT" > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
