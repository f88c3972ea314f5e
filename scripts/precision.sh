#!/usr/bin/env bash
# precision.sh: how often parent inference would have been right, measured
# against apps that copy trace headers (the real parent).
#
# Runs the demo topology (gateway -> order-service -> user-service, apps
# copying headers, simulated work on) once per concurrency level; a load
# generator keeps N requests in flight (N threads, one request at a time
# each) for a fixed time; then the three sidecars' metrics are summed:
# tracehop_inferred_parents_total by outcome. Prints a Markdown table of
# calls, confirmed, contradicted, would-be-ambiguous per level.
#
# Bar (exit 1 otherwise): contradicted = 0 at every level; at concurrency 1
# every call is confirmed.
#
# Usage: scripts/precision.sh [path/to/tracehop] [--seconds S] [--levels 1,2,4]
#        (defaults: target/release/tracehop, 3 s, 1,2,4,8,16)
# Everything listens on 127.0.0.1 (ephemeral ports); every process started
# here is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/tracehop
seconds=3 levels=1,2,4,8,16
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "precision.sh: unknown option $1" >&2; exit 2 ;;
    *) bin=$1; shift ;;
  esac
done
[ -x "$bin" ] || { echo "precision.sh: binary $bin not found (cargo build --release)" >&2; exit 2; }
work=$(mktemp -d)
demo_pid=
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# One level: prints "requests calls confirmed contradicted would_be_ambiguous would_be_no_candidate".
level() {
  local n=$1 out="$work/demo-$1.txt"
  "$bin" demo --base-port 0 > "$out" 2>"$work/demo-$1.err" & demo_pid=$!
  for _ in $(seq 100); do grep -q "Press Ctrl-C" "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q "Press Ctrl-C" "$out" || { echo "precision.sh: the demo did not start" >&2; cat "$work/demo-$1.err" >&2; exit 1; }
  python3 - "$out" "$n" "$seconds" <<'PY'
import http.client, re, sys, threading, time
text = open(sys.argv[1]).read()
gateway = re.search(r"curl http://([\d.]+:\d+)/api/orders/1001", text).group(1)
admins = re.findall(r"sidecar metrics: http://([\d.]+:\d+)/metrics", text)
n, seconds = int(sys.argv[2]), float(sys.argv[3])
paths = ["/api/orders/1001", "/api/users/1", "/api/orders", "/api/users", "/api/orders/1003",
         "/api/users/999", "/api/orders/1002", "/api/users/2"]
sent = [0] * n
stop = time.monotonic() + seconds

def worker(i):
    host, port = gateway.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    k = i
    while time.monotonic() < stop:
        conn.request("GET", paths[k % len(paths)])
        conn.getresponse().read()
        sent[i] += 1
        k += 1
    conn.close()

threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
counts = {}
for admin in admins:
    host, port = admin.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        m = re.match(r'tracehop_inferred_parents_total\{(.*)\} (\S+)', line)
        if m:
            outcome = re.search(r'outcome="([^"]+)"', m.group(1)).group(1)
            counts[outcome] = counts.get(outcome, 0) + int(float(m.group(2)))
keys = ["confirmed", "contradicted", "would_be_ambiguous", "would_be_no_candidate"]
calls = sum(counts.get(k, 0) for k in keys)
without = sum(counts.get(k, 0) for k in ["inferred", "ambiguous", "no_candidate"])
if without:
    sys.exit(f"precision.sh: {without} calls arrived without context: the demo apps copy headers")
print(sum(sent), calls, *(counts.get(k, 0) for k in keys))
PY
  kill -INT "$demo_pid"; wait "$demo_pid" || true; demo_pid=
}

echo "| concurrency | requests | calls | confirmed | contradicted | would be ambiguous | no candidate | confirmed share |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
status=0
IFS=, read -ra each <<< "$levels"
for n in "${each[@]}"; do
  level "$n" > "$work/row"
  read -r requests calls confirmed contradicted ambiguous none < "$work/row"
  share=$(python3 -c "print(f'{100 * $confirmed / max($calls, 1):.1f} %')")
  echo "| $n | $requests | $calls | $confirmed | $contradicted | $ambiguous | $none | $share |"
  if [ "$contradicted" -ne 0 ]; then
    echo "precision.sh: FAIL: $contradicted contradicted at concurrency $n" >&2; status=1
  fi
  if [ "$n" = 1 ] && [ "$confirmed" -ne "$calls" ]; then
    echo "precision.sh: FAIL: at concurrency 1, $confirmed of $calls calls confirmed" >&2; status=1
  fi
  if [ "$calls" -eq 0 ]; then
    echo "precision.sh: FAIL: no outbound calls at concurrency $n" >&2; status=1
  fi
done
exit $status
