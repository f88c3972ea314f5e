#!/usr/bin/env bash
# pgo-build.sh: a release build of tracehop optimised with a profile of its
# own request path (profile-guided optimisation), the binary the container
# image ships and the benchmark measures.
#
#   1. build tracehop instrumented (-Cprofile-generate);
#   2. train it: the instrumented sidecar in front of a demo service, every
#      request traced and exported to an embedded collector, driven by curl
#      on 127.0.0.1 with the request shapes a sidecar serves (keep-alive and
#      new-connection GETs, sized and chunked uploads, h2c, TLS 1.3 with
#      HTTP/1.1 and HTTP/2, the access log on and off, sampling 1 and 0);
#   3. merge the sidecars' profiles (llvm-profdata) and build again with
#      -Cprofile-use.
#
# Why: the profile tells the compiler which calls and branches the request
# path takes, so it inlines and lays out code for them: 15 % fewer
# instructions per traced keep-alive GET (callgrind, 25,371 -> 21,596) and
# about a quarter less user CPU per request at 5,000 req/s (bench/README.md,
# "profile-guided optimisation"). Paths the training does not take are
# compiled for size, not speed, so the training covers every workload of
# bench/compare.sh.
#
# Usage: scripts/pgo-build.sh [--out PATH] [--port-base P (uses P..P+7)] [--requests N]
#        scripts/pgo-build.sh --missing   (prints the Debian packages of the
#        tools below that are missing, e.g. "llvm-22", and builds nothing)
#   --out        where the binary goes (default: target/pgo/tracehop)
#   --requests   keep-alive GETs per training pass (default 20000; each
#                other shape takes a fraction of it)
# Env: LLVM_PROFDATA (an llvm-profdata of rustc's LLVM version; found
#      otherwise in rustup's llvm-tools component or as llvm-profdata-MAJOR,
#      Debian's llvm-MAJOR package), CARGO_TARGET_DIR, RUSTFLAGS (kept).
# Needs: cargo, curl, openssl (a throwaway certificate for the TLS shapes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/pgo"
OUT="$TARGET/tracehop" PORT_BASE=19380 REQUESTS=20000 MISSING=0

die() { echo "pgo-build.sh: $*" >&2; exit 2; }
say() { echo "pgo-build.sh: $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --port-base) PORT_BASE="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --missing) MISSING=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$REQUESTS" =~ ^[0-9]+$ && "$REQUESTS" -ge 100 ]] || die "--requests needs a number of at least 100"
for tool in cargo rustc; do command -v "$tool" > /dev/null || die "missing: $tool"; done

# llvm-profdata must read the profiles of rustc's own LLVM version.
llvm_major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
find_profdata() {
  if [ -n "${LLVM_PROFDATA:-}" ]; then echo "$LLVM_PROFDATA"; return; fi
  local tools
  tools="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
  if [ -x "$tools" ]; then echo "$tools"; return; fi
  command -v "llvm-profdata-$llvm_major" || true
}
PROFDATA="$(find_profdata)"
missing=()
for tool in curl openssl; do command -v "$tool" > /dev/null || missing+=("$tool"); done
[ -n "$PROFDATA" ] || missing+=("llvm-$llvm_major")
if [ "$MISSING" = 1 ]; then echo "${missing[*]}"; exit 0; fi
[ ${#missing[@]} = 0 ] \
  || die "missing: ${missing[*]} (Debian packages; for LLVM also: rustup component add llvm-tools)"
"$PROFDATA" --version 2>&1 | grep -q "version $llvm_major\." \
  || die "$PROFDATA is not LLVM $llvm_major's (rustc's): $("$PROFDATA" --version 2>&1 | grep -m1 version)"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

build() {  # TARGET-SUBDIR EXTRA-RUSTFLAGS
  (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} $2" \
    cargo build --release --locked --bin tracehop --target-dir "$TARGET/$1") \
    || die "cargo build ($1) failed"
}

say "1/3 instrumented build"
# Fixed flags, so that a second run reuses this build (the sidecars write
# their profiles where LLVM_PROFILE_FILE says, not here).
build instrumented "-Cprofile-generate=$TARGET/instrumented/profiles"
BIN="$TARGET/instrumented/release/tracehop"

say "2/3 training"
UPSTREAM=$PORT_BASE COLLECTOR=$((PORT_BASE + 1))
mkdir -p "$WORK/profiles" "$WORK/discard"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2> /dev/null || die "openssl could not make a certificate"
printf 'log:\n  access_log: true\n' > "$WORK/access.yaml"
printf 'log:\n  access_log: false\n' > "$WORK/quiet.yaml"
head -c 16384 /dev/zero | tr '\0' x > "$WORK/upload"

wait_up() {  # URL PID
  for _ in $(seq 200); do
    curl -sk -o /dev/null "$1" && return 0
    kill -0 "$2" 2> /dev/null || die "a training process exited early (see above)"
    sleep 0.05
  done
  die "nothing answered at $1"
}
# Only the sidecars' profiles count: the demo service and the collector
# write theirs where they are thrown away.
spawn() {  # PROFILE-DIR ARGS...
  local dir="$1"; shift
  LLVM_PROFILE_FILE="$dir/%p.profraw" "$BIN" "$@" > /dev/null 2>> "$WORK/stderr" &
  PIDS+=($!)
}
spawn "$WORK/discard" demo-app user-service --listen "127.0.0.1:$UPSTREAM"
wait_up "http://127.0.0.1:$UPSTREAM/users/1" "$!"
spawn "$WORK/discard" collector --listen "127.0.0.1:$COLLECTOR"
wait_up "http://127.0.0.1:$COLLECTOR/api/v2/services" "$!"

n=$REQUESTS
load() {  # CURL-ARGS...: requests in parallel (8 connections or streams), answers dropped
  curl -sk --fail-early --parallel --parallel-max 8 "$@" > /dev/null \
    || die "training requests failed: curl $*; the processes said: $(tail -5 "$WORK/stderr")"
}
# The request shapes, against one sidecar at SCHEME://127.0.0.1:PORT.
drive() {  # SCHEME PORT
  local base="$1://127.0.0.1:$2"
  if [ "$1" = https ]; then
    load --http1.1 "$base/users/[1-4]?i=[1-$((n / 8))]"
    load --http2 "$base/users/[1-4]?i=[1-$((n / 8))]"
    return
  fi
  load "$base/users/[1-4]?i=[1-$((n / 4))]"
  load -H 'Connection: close' "$base/users/1?c=[1-$((n / 40))]"
  load --data-binary "@$WORK/upload" "$base/users/1?u=[1-$((n / 20))]"
  load -H 'Transfer-Encoding: chunked' --data-binary "@$WORK/upload" \
    "$base/users/1?t=[1-$((n / 40))]"
  # h2c: curl (7.88) reuses a prior-knowledge connection wrongly, so one
  # request per connection, unless h2load is at hand.
  if command -v h2load > /dev/null; then
    h2load -n $((n / 4)) -c 4 -m 8 "$base/users/1" | grep -q "$((n / 4)) succeeded" \
      || die "h2c training requests failed"
  else
    for i in $(seq $((n / 100))); do load --http2-prior-knowledge "$base/users/1?h=$i"; done
  fi
  load -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' \
    "$base/users/1?p=[1-$((n / 20))]"
}
pass=0
train() {  # CONFIG SAMPLE-RATIO [TLS]
  local port=$((PORT_BASE + 2 + pass)) admin=$((PORT_BASE + 5 + pass)) scheme=http tls=()
  pass=$((pass + 1))
  if [ -n "${3:-}" ]; then scheme=https tls=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"); fi
  spawn "$WORK/profiles" run --config "$1" --listen "127.0.0.1:$port" "${tls[@]}" \
    --upstream "http://127.0.0.1:$UPSTREAM" --admin "127.0.0.1:$admin" --service-name pgo \
    --sample-ratio "$2" --zipkin "http://127.0.0.1:$COLLECTOR/api/v2/spans"
  local pid=$!
  wait_up "$scheme://127.0.0.1:$port/users/1" "$pid"
  drive "$scheme" "$port"
  curl -s -o /dev/null "http://127.0.0.1:$admin/metrics"
  kill -TERM "$pid"
  wait "$pid" || die "a training sidecar exited with an error"
}
train "$WORK/quiet.yaml" 1
train "$WORK/access.yaml" 0
train "$WORK/quiet.yaml" 1 tls
services=$(curl -s "http://127.0.0.1:$COLLECTOR/api/v2/services")
say "trained: services seen by the collector: $services"

profiles=("$WORK"/profiles/*.profraw)
[ "${#profiles[@]}" = 3 ] && [ -s "${profiles[0]}" ] \
  || die "expected a profile from each of the 3 training sidecars, found: ${profiles[*]}"
"$PROFDATA" merge -o "$WORK/merged.profdata" "${profiles[@]}" || die "llvm-profdata merge failed"
functions=$("$PROFDATA" show "$WORK/merged.profdata" | sed -n 's/^Total functions: //p')
[ "${functions:-0}" -gt 1000 ] || die "the merged profile covers ${functions:-no} functions"
say "profile: $functions functions"

say "3/3 optimised build"
# Named by its content: cargo rebuilds when the flags change, and a new
# profile must rebuild everything, the dependencies included.
profile="$TARGET/profile-$(sha256sum "$WORK/merged.profdata" | cut -c1-16).profdata"
cp "$WORK/merged.profdata" "$profile"
build optimized "-Cprofile-use=$profile"
install -D -m 0755 "$TARGET/optimized/release/tracehop" "$OUT"
say "built $OUT ($("$OUT" --version))"
