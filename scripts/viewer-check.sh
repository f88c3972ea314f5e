#!/usr/bin/env bash
# Checks the collector's trace viewer in headless Chromium.
#
# Starts `tracehop collector --listen 127.0.0.1:PORT`, uploads a known
# three-service trace, loads the viewer's trace page and list page, and asserts
# that the rendered DOM shows the waterfall rows (span names, services, the
# error span) and the trace in the list. It then stores 1,000 more traces and
# a 200-span trace and checks both pages still render in time. Screenshots go
# to a temporary directory whose path is printed at the end.
#
# Usage: scripts/viewer-check.sh [TRACEHOP_BINARY]   (default target/release/tracehop)
# Env:   COLLECTOR_CMD  command that starts the collector, instead of
#                       "BINARY collector"; "--listen ADDR" is appended
#                       (e.g. COLLECTOR_CMD="target/debug/tracehop collector").
#        CHROMIUM       browser binary (default: chromium, chromium-browser,
#                       google-chrome, whichever is found first).
set -euo pipefail

binary="${1:-target/release/tracehop}"
collector_cmd="${COLLECTOR_CMD:-$binary collector}"
work="$(mktemp -d "${TMPDIR:-/tmp}/viewer-check.XXXXXX")"
shots="$work/screenshots"
mkdir -p "$shots"
collector_pid=""

fail() {
    echo "viewer-check: FAIL: $*" >&2
    exit 1
}

cleanup() {
    if [[ -n "$collector_pid" ]] && kill -0 "$collector_pid" 2>/dev/null; then
        kill "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
    fi
    rm -rf "$work/profile-"*
}
trap cleanup EXIT

browser="${CHROMIUM:-}"
if [[ -z "$browser" ]]; then
    for candidate in chromium chromium-browser google-chrome; do
        if command -v "$candidate" >/dev/null 2>&1; then
            browser="$candidate"
            break
        fi
    done
fi
[[ -n "$browser" ]] || fail "no Chromium found (install the 'chromium' package or set CHROMIUM)"
command -v curl >/dev/null || fail "curl is required"
if [[ -z "${COLLECTOR_CMD:-}" && ! -x "$binary" ]]; then
    fail "tracehop binary '$binary' not found or not executable (build it or pass its path)"
fi

# ---- start the collector on a free loopback port --------------------------

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_collector() {
    local attempt
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        port_in_use "$port" && continue
        # shellcheck disable=SC2086 # the command is split into words on purpose
        $collector_cmd --listen "127.0.0.1:$port" >"$work/collector.log" 2>&1 &
        collector_pid=$!
        local deadline=$((SECONDS + 30))
        while ((SECONDS < deadline)); do
            if curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v2/services" 2>/dev/null; then
                return 0
            fi
            kill -0 "$collector_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
        collector_pid=""
        echo "viewer-check: collector did not come up on port $port (attempt $attempt)" >&2
    done
    cat "$work/collector.log" >&2 || true
    fail "could not start the collector with: $collector_cmd --listen 127.0.0.1:PORT"
}

start_collector
base="http://127.0.0.1:$port"
echo "viewer-check: collector at $base"

post_spans() {
    local status
    status="$(curl -sS -o "$work/post.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$1" "$base/api/v2/spans")" || fail "POST /api/v2/spans failed"
    [[ "$status" == 202 ]] || fail "POST /api/v2/spans answered $status: $(cat "$work/post.out")"
}

# ---- the known trace -------------------------------------------------------

trace_id="4bf92f3577b34da6a3ce929d0e0e4736"
now_us="$(date +%s%6N)"
t0=$((now_us - 2000000))
cat >"$work/trace.json" <<EOF
[
 {"traceId":"$trace_id","id":"00f067aa0ba902b7","kind":"SERVER","name":"get /api/orders/{id}",
  "timestamp":$t0,"duration":48000,"localEndpoint":{"serviceName":"api-gateway","ipv4":"127.0.0.1","port":8080},
  "remoteEndpoint":{"ipv4":"127.0.0.1","port":51000},
  "tags":{"http.request.method":"GET","url.path":"/api/orders/7","http.response.status_code":"200"}},
 {"traceId":"$trace_id","parentId":"00f067aa0ba902b7","id":"1a2b3c4d5e6f7081","kind":"CLIENT","name":"get /orders/{id}",
  "timestamp":$((t0 + 1500)),"duration":44000,"localEndpoint":{"serviceName":"api-gateway"},
  "remoteEndpoint":{"serviceName":"order-service","port":8082}},
 {"traceId":"$trace_id","parentId":"1a2b3c4d5e6f7081","id":"2b3c4d5e6f708192","kind":"SERVER","name":"get /orders/{id}",
  "timestamp":$((t0 + 2500)),"duration":42000,"localEndpoint":{"serviceName":"order-service","port":8082},
  "tags":{"http.response.status_code":"200"}},
 {"traceId":"$trace_id","parentId":"2b3c4d5e6f708192","id":"3c4d5e6f708192a3","kind":"CLIENT","name":"get /users/{id}",
  "timestamp":$((t0 + 6000)),"duration":30000,"localEndpoint":{"serviceName":"order-service"},
  "remoteEndpoint":{"serviceName":"user-service","port":8081},"tags":{"error":"upstream answered 503"}},
 {"traceId":"$trace_id","parentId":"3c4d5e6f708192a3","id":"4d5e6f708192a3b4","kind":"SERVER","name":"get /users/{id}",
  "timestamp":$((t0 + 7000)),"duration":28000,"localEndpoint":{"serviceName":"user-service","port":8081},
  "annotations":[{"timestamp":$((t0 + 9000)),"value":"retried"}],
  "tags":{"http.response.status_code":"503","error":"database unavailable"}}
]
EOF
post_spans "$work/trace.json"

# ---- headless Chromium -----------------------------------------------------

# render URL OUT_HTML [SCREENSHOT_PNG]: dumps the DOM after scripts ran.
render() {
    local url="$1" out="$2" shot="${3:-}" profile
    profile="$(mktemp -d "$work/profile-XXXXXX")"
    local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --disable-dev-shm-usage --user-data-dir="$profile" --virtual-time-budget=5000
        --window-size=1440,900)
    timeout 90 "$browser" "${flags[@]}" --dump-dom "$url" >"$out" 2>"$work/chromium.log" ||
        fail "Chromium could not load $url (see $work/chromium.log)"
    if [[ -n "$shot" ]]; then
        timeout 90 "$browser" "${flags[@]}" --hide-scrollbars --screenshot="$shot" "$url" \
            >/dev/null 2>>"$work/chromium.log" || fail "Chromium could not screenshot $url"
    fi
    rm -rf "$profile"
}

# expect FILE NEEDLE WHAT: FILE must contain NEEDLE.
expect() {
    grep -qF -- "$2" "$1" || fail "$3: '$2' not found in the rendered page ($1)"
}

count() {
    grep -oF -- "$2" "$1" | wc -l | tr -d ' '
}

render "$base/#/trace/$trace_id" "$work/trace.html" "$shots/trace.png"
expect "$work/trace.html" 'id="wf-rows"' "waterfall container"
rows="$(count "$work/trace.html" 'class="span-row')"
[[ "$rows" == 5 ]] || fail "waterfall shows $rows span rows, expected 5 ($work/trace.html)"
for name in 'get /api/orders/{id}' 'get /orders/{id}' 'get /users/{id}'; do
    expect "$work/trace.html" "data-span-name=\"$name\"" "waterfall row for span '$name'"
done
for service in api-gateway order-service user-service; do
    expect "$work/trace.html" "data-service=\"$service\"" "waterfall row for service '$service'"
done
errors="$(count "$work/trace.html" 'class="span-row error')"
[[ "$errors" == 2 ]] || fail "waterfall marks $errors spans as errors, expected 2"
expect "$work/trace.html" 'id="span-tags"' "span detail panel with tags"
expect "$work/trace.html" "$trace_id" "trace id in the page"

render "$base/#/" "$work/list.html" "$shots/list.png"
expect "$work/list.html" "data-trace-id=\"$trace_id\"" "trace list row"
expect "$work/list.html" 'data-root-service="api-gateway"' "root service in the trace list"
expect "$work/list.html" 'data-root-name="get /api/orders/{id}"' "root span name in the trace list"
echo "viewer-check: known trace renders in the waterfall and the list"

# ---- a B3 shared span: the app joins the sidecar's span id ------------------
# The sidecar ("user-service") records a SERVER span; the app behind it, with a
# span-sharing tracer, reports a SERVER span with the same id, shared: true and
# no parent id, then a CLIENT call of its own. The waterfall shows all three,
# the app's span one level under the sidecar's, its call under the app's span.

shared_trace="5b8aa5a2d2c872e8321cf37308d69df2"
cat >"$work/shared.json" <<EOF
[
 {"traceId":"$shared_trace","id":"6e0c63257de34c92","kind":"SERVER","name":"get /users/{id}",
  "timestamp":$t0,"duration":20000,"localEndpoint":{"serviceName":"user-service"}},
 {"traceId":"$shared_trace","id":"6e0c63257de34c92","kind":"SERVER","shared":true,"name":"get /users/:id",
  "timestamp":$((t0 + 500)),"duration":18000,"localEndpoint":{"serviceName":"user-app"}},
 {"traceId":"$shared_trace","parentId":"6e0c63257de34c92","id":"7f1d74368ef45da3","kind":"CLIENT","name":"select",
  "timestamp":$((t0 + 1000)),"duration":9000,"localEndpoint":{"serviceName":"user-app"},
  "remoteEndpoint":{"serviceName":"postgres"}}
]
EOF
post_spans "$work/shared.json"
render "$base/#/trace/$shared_trace" "$work/shared.html" "$shots/shared.png"
rows="$(count "$work/shared.html" 'class="span-row')"
[[ "$rows" == 3 ]] || fail "the shared-span trace shows $rows rows, expected 3 ($work/shared.html)"
for row in 'data-service="user-service" data-depth="0"' \
    'data-service="user-app" data-depth="1" data-shared="true"' \
    'data-service="user-app" data-depth="2"'; do
    expect "$work/shared.html" "$row" "shared-span waterfall row"
done
expect "$work/shared.html" '>shared<' "shared marker on the app's row"
echo "viewer-check: a B3 shared span shows under the span whose id it shares"

# ---- scale: 1,000 more traces and one 200-span trace ------------------------

awk -v now="$now_us" 'BEGIN {
    printf "["
    for (t = 1; t <= 1000; t++) {
        ts = now - 60000000 + t * 1000
        for (s = 1; s <= 3; s++) {
            if (t > 1 || s > 1) printf ","
            printf "{\"traceId\":\"%016x\",\"id\":\"%016x\"", 4096 + t, s
            if (s > 1) printf ",\"parentId\":\"%016x\"", s - 1
            printf ",\"kind\":\"SERVER\",\"name\":\"get /load/%d\",\"timestamp\":%.0f,\"duration\":%d", s, ts + s * 10, 5000 - s * 1000
            printf ",\"localEndpoint\":{\"serviceName\":\"load-%d\"}}", s
        }
    }
    printf "]"
}' >"$work/many.json"
post_spans "$work/many.json"

big_trace="00000000000000000000000000b16b16"
awk -v now="$now_us" -v trace="$big_trace" 'BEGIN {
    printf "["
    for (s = 1; s <= 200; s++) {
        if (s > 1) printf ","
        parent = (s == 1) ? "" : sprintf(",\"parentId\":\"%016x\"", int(s / 2))
        printf "{\"traceId\":\"%s\",\"id\":\"%016x\"%s,\"name\":\"op %d\",\"timestamp\":%.0f,\"duration\":%d", trace, s, parent, s, now - 1000000 + s * 100, 200000 - s * 900
        printf ",\"localEndpoint\":{\"serviceName\":\"svc-%d\"}}", s % 7
    }
    printf "]"
}' >"$work/big.json"
post_spans "$work/big.json"

render "$base/#/" "$work/list-many.html" "$shots/list-many.png"
listed="$(count "$work/list-many.html" 'class="trace-row')"
[[ "$listed" == 100 ]] || fail "with 1,002 traces stored the list shows $listed rows, expected 100"

render "$base/#/trace/0000000000b16b16" "$work/big.html" "$shots/big-trace.png"
rows="$(count "$work/big.html" 'class="span-row')"
[[ "$rows" == 200 ]] || fail "the 200-span trace shows $rows rows, expected 200"
expect "$work/big.html" 'data-span-name="op 200"' "last span of the 200-span trace"
echo "viewer-check: list with 1,002 traces and a 200-span waterfall render"

echo "viewer-check: PASS (screenshots in $shots)"
