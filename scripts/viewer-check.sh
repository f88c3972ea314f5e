#!/usr/bin/env bash
# Checks the collector's trace viewer in headless Chromium.
#
# Starts `tracehop collector --listen 127.0.0.1:PORT`, uploads a known
# three-service trace, loads the viewer's trace page and list page, and asserts
# that the rendered DOM shows the waterfall rows (span names, services, the
# error span, "→ service" on client rows) and the trace in the list. In the
# laid-out page it checks that no span name is cut off at 1440 px while the
# long one is at 800 px (full name on hover), and that the services' colours
# are a clear hue apart and the same in the list. It then checks that a trace
# fragment is marked incomplete, counts read "1 span"/"2 error spans", stores
# 1,000 more traces and a 200-span trace and checks both pages still render,
# narrows the list with tag searches, and checks the dependency graph (nodes,
# an edge with its call and error counts, nothing overlapping). Each passed
# assertion prints an "ok:" line; a step that cannot run prints "skip:".
# Screenshots go to a temporary directory whose path is printed at the end.
#
# DOM dumps come from `chromium --dump-dom`; checks on layout and computed
# styles run in the page through scripts/viewer_probe.py (python3, the
# DevTools protocol over a pipe, no port).
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

ok() {
    echo "viewer-check: ok: $*"
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
python="$(command -v python3 || true)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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
  "tags":{"http.request.method":"GET","http.route":"/api/orders/{id}","url.path":"/api/orders/7","http.response.status_code":"200"}},
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
  "tags":{"http.response.status_code":"503","error":"database unavailable"}},
 {"traceId":"$trace_id","parentId":"4d5e6f708192a3b4","id":"5e6f708192a3b4c5","kind":"CLIENT","name":"select user_notification_preferences",
  "timestamp":$((t0 + 8000)),"duration":6000,"localEndpoint":{"serviceName":"user-service"},
  "remoteEndpoint":{"serviceName":"user-db","port":5432}}
]
EOF

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

# probe URL WIDTH WHAT < SCRIPT: runs SCRIPT in the laid-out page (see
# scripts/viewer_probe.py) and prints its ok lines; any FAIL line, or a script
# that cannot run, fails the check. Without python3 it prints "skip: WHAT".
probe() {
    local url="$1" width="$2" what="$3" out line failed=""
    if [[ -z "$python" ]]; then
        cat >/dev/null
        echo "viewer-check: skip: $what (python3 is needed to run checks in the page)"
        return 0
    fi
    out="$(timeout 120 "$python" "$here/viewer_probe.py" "$browser" "$url" "$width" 2>"$work/probe.log")" ||
        fail "$what: $(grep '^viewer_probe:' "$work/probe.log" | tail -n 1) (see $work/probe.log)"
    [[ -n "$out" ]] || fail "$what: the page script checked nothing"
    while IFS= read -r line; do
        case "$line" in
            ok:*) echo "viewer-check: $line" ;;
            *) echo "viewer-check: FAIL: $what: ${line#FAIL: }" >&2 && failed=1 ;;
        esac
    done <<<"$out"
    [[ -z "$failed" ]] || exit 1
}

# Before anything is stored, then with the known trace.
render "$base/#/dependencies" "$work/deps-empty.html"
expect "$work/deps-empty.html" '<p id="deps-empty" class="empty">' "the empty dependency graph's message"
ok "with nothing stored the dependency view says so"

post_spans "$work/trace.json"
render "$base/#/trace/$trace_id" "$work/trace.html" "$shots/trace.png"
expect "$work/trace.html" 'id="wf-rows"' "waterfall container"
rows="$(count "$work/trace.html" 'class="span-row')"
[[ "$rows" == 6 ]] || fail "waterfall shows $rows span rows, expected 6 ($work/trace.html)"
for name in 'get /api/orders/{id}' 'get /orders/{id}' 'get /users/{id}' 'select user_notification_preferences'; do
    expect "$work/trace.html" "data-span-name=\"$name\"" "waterfall row for span '$name'"
done
for service in api-gateway order-service user-service; do
    expect "$work/trace.html" "data-service=\"$service\"" "waterfall row for service '$service'"
done
errors="$(count "$work/trace.html" 'class="span-row error')"
[[ "$errors" == 2 ]] || fail "waterfall marks $errors spans as errors, expected 2"
expect "$work/trace.html" 'id="span-tags"' "span detail panel with tags"
expect "$work/trace.html" "$trace_id" "trace id in the page"
for remote in order-service user-service user-db; do
    expect "$work/trace.html" "data-remote=\"$remote\"" "client row calling $remote"
done
[[ "$(count "$work/trace.html" 'class="remote"')" == 3 ]] ||
    fail "expected '→ service' on the 3 client rows only ($work/trace.html)"

render "$base/#/" "$work/list.html" "$shots/list.png"
expect "$work/list.html" "data-trace-id=\"$trace_id\"" "trace list row"
expect "$work/list.html" 'data-root-service="api-gateway"' "root service in the trace list"
expect "$work/list.html" 'data-root-name="get /api/orders/{id}"' "root span name in the trace list"
expect "$work/list.html" 'title="2 error spans"' "error count in the trace list"
ok "known trace renders in the waterfall and the list"

probe "$base/#/trace/$trace_id" 1440 "the known trace at 1440 px" <<'JS'
await waitFor(() => document.querySelectorAll('.span-row').length === 6, 'six span rows');
const title = document.getElementById('trace-title').textContent;
check('the trace is titled by its root span', title !== 'api-gateway get /api/orders/{id}' && 'it reads ' + title);
const cut = [...document.querySelectorAll('.span-row .span-name')]
  .filter((name) => name.scrollWidth > name.clientWidth).map((name) => name.textContent);
check('no span name is cut off at 1440 px', cut.length && 'cut off: ' + cut.join(', '));
const longRow = document.querySelector('.span-row[data-span-name="select user_notification_preferences"]');
const share = longRow.querySelector('.span-label').getBoundingClientRect().width /
  document.getElementById('waterfall').getBoundingClientRect().width;
check('the name column widens for a long name five levels deep',
  share < 0.45 && 'the name column is ' + Math.round(share * 100) + '% of the waterfall');
const calls = { '1a2b3c4d5e6f7081': 'order-service', '3c4d5e6f708192a3': 'user-service', '5e6f708192a3b4c5': 'user-db' };
const wrong = Object.entries(calls).map(([id, service]) => {
  const remote = document.querySelector('.span-row[data-span-id="' + id + '"] .remote');
  return remote && remote.textContent === '→ ' + service ? null : id + ' shows ' + (remote ? remote.textContent : 'nothing');
}).filter(Boolean);
check('client rows read "→ order-service", "→ user-service", "→ user-db"', wrong.join('; '));

// Hue in degrees and contrast on white of a computed "rgb(r, g, b)".
const channels = (css) => css.match(/[\d.]+/g).slice(0, 3).map((v) => Number(v) / 255);
const hue = (css) => {
  const [r, g, b] = channels(css);
  const max = Math.max(r, g, b);
  const range = max - Math.min(r, g, b);
  if (!range) return NaN;
  const h = max === r ? ((g - b) / range) % 6 : max === g ? (b - r) / range + 2 : (r - g) / range + 4;
  return (h * 60 + 360) % 360;
};
const contrast = (css) => {
  const linear = channels(css).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 1.05 / (0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2] + 0.05);
};
const services = ['api-gateway', 'order-service', 'user-service'];
const colours = Object.fromEntries(services.map((service) => [service,
  getComputedStyle(document.querySelector('.span-row[data-service="' + service + '"] .svc-bar')).backgroundColor]));
const close = [];
for (let i = 0; i < services.length; i++) {
  for (let j = i + 1; j < services.length; j++) {
    const apart = Math.abs(hue(colours[services[i]]) - hue(colours[services[j]]));
    const distance = Math.min(apart, 360 - apart);
    if (!(distance >= 24)) close.push(services[i] + ' and ' + services[j] + ' are ' + Math.round(distance) + '° apart');
  }
}
check('the three services have colours at least 24° of hue apart', close.join('; '));
const faint = services.filter((service) => contrast(colours[service]) < 3);
check('each service colour has 3:1 contrast on white', faint.length && 'too faint: ' + faint.join(', '));
location.hash = '#/';
await waitFor(() => document.querySelector('#trace-rows .chip[data-service="user-service"]'), 'the trace list');
const moved = services.filter((service) => getComputedStyle(
  document.querySelector('#trace-rows .chip[data-service="' + service + '"] .dot')).backgroundColor !== colours[service]);
check('each service has the same colour in the trace list', moved.length && 'differs: ' + moved.join(', '));
JS

probe "$base/#/trace/$trace_id" 800 "the known trace at 800 px" <<'JS'
await waitFor(() => document.querySelectorAll('.span-row').length === 6, 'six span rows');
const name = document.querySelector('.span-row[data-span-name="select user_notification_preferences"] .span-name');
check('at 800 px the long name is cut, with the full name on hover',
  !(name.scrollWidth > name.clientWidth) ? 'not cut: the name column has no bound'
    : name.title !== 'select user_notification_preferences' && 'its title is ' + JSON.stringify(name.title));
JS

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
ok "a B3 shared span shows under the span whose id it shares"

# ---- an incomplete trace: a span whose parent has not arrived ---------------

fragment="6f1e2d3c4b5a69788796a5b4c3d2e1f0"
cat >"$work/fragment.json" <<EOF
[
 {"traceId":"$fragment","parentId":"0badc0ffee000001","id":"0badc0ffee000002","kind":"SERVER","name":"post /cart",
  "timestamp":$((t0 + 1000)),"duration":3000,"localEndpoint":{"serviceName":"cart-service"},"tags":{"error":"timeout"}}
]
EOF
post_spans "$work/fragment.json"
render "$base/#/" "$work/list-fragment.html" "$shots/list-fragment.png"
expect "$work/list-fragment.html" "data-trace-id=\"$fragment\" data-incomplete=\"true\"" "incomplete trace in the list"
expect "$work/list-fragment.html" '>incomplete<' "incomplete marker in the list"
[[ "$(count "$work/list-fragment.html" 'data-incomplete="true"')" == 1 ]] ||
    fail "only the fragment should be marked incomplete ($work/list-fragment.html)"
expect "$work/list-fragment.html" 'title="1 error span"' "singular error count in the list"
expect "$work/list-fragment.html" '3 traces, newest first · 2 with errors · 1 incomplete' "list summary"
render "$base/#/trace/$fragment" "$work/fragment.html" "$shots/fragment.png"
expect "$work/fragment.html" '>1 span<' "singular span count in the status line"
expect "$work/fragment.html" 'class="incomplete-mark"' "incomplete marker on the trace page"
ok "a trace whose parent span has not arrived is marked incomplete; counts read 1 span, 1 error span"

probe "$base/#/" 1440 "the incomplete marker" <<JS
const row = await waitFor(() => document.querySelector('.trace-row[data-trace-id="$fragment"]'), 'the fragment row');
const mark = row.querySelector('.incomplete-mark');
const other = document.querySelector('.trace-row[data-trace-id="$trace_id"]');
check('the marker shows inside an ordinary list row',
  getComputedStyle(row).display !== 'table-row' ? 'the row is laid out as ' + getComputedStyle(row).display
    : !mark || !mark.getBoundingClientRect().width ? 'the marker is not visible'
      : row.cells[1].getBoundingClientRect().left !== other.cells[1].getBoundingClientRect().left && 'its cells are out of line');
JS

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
[[ "$listed" == 100 ]] || fail "with 1,004 traces stored the list shows $listed rows, expected 100"

render "$base/#/trace/0000000000b16b16" "$work/big.html" "$shots/big-trace.png"
rows="$(count "$work/big.html" 'class="span-row')"
[[ "$rows" == 200 ]] || fail "the 200-span trace shows $rows rows, expected 200"
expect "$work/big.html" 'data-span-name="op 200"' "last span of the 200-span trace"
ok "list with 1,004 traces and a 200-span waterfall render"

# ---- search by tag (Zipkin's annotationQuery) -------------------------------

render "$base/#/?annotationQuery=http.route%3D%2Fapi%2Forders%2F%7Bid%7D" "$work/tagged.html" "$shots/tag-search.png"
[[ "$(count "$work/tagged.html" 'class="trace-row')" == 1 ]] ||
    fail "the search http.route=/api/orders/{id} should list 1 trace ($work/tagged.html)"
expect "$work/tagged.html" "data-trace-id=\"$trace_id\"" "the trace found by http.route=/api/orders/{id}"
expect "$work/tagged.html" '1 trace with http.route=/api/orders/{id}' "list summary of a tag search"
ok "the link #/?annotationQuery=http.route=/api/orders/{id} lists only the trace with that tag"

probe "$base/#/" 1440 "search by tag in the form" <<JS
await waitFor(() => document.querySelectorAll('.trace-row').length === 100, 'the list of 100 traces');
const search = async (query) => {
  document.getElementById('filter-tags').value = query;
  document.getElementById('filters').requestSubmit();
  await waitFor(() => document.getElementById('list-summary').textContent.includes(' with ' + query + ','),
    'the list for ' + query);
  return [...document.querySelectorAll('.trace-row')].map((row) => row.dataset.traceId).sort().join(' ');
};
const both = ['$trace_id', '$fragment'].sort().join(' ');
let found = await search('error');
check('typing "error" narrows 100 rows to the 2 traces with an error tag', found !== both && 'found ' + found);
found = await search('error and retried');
check('"error and retried" (a tag key and an annotation) finds the 1 trace with both',
  found !== '$trace_id' && 'found ' + found);
check('the search is kept in the address', !location.hash.includes('annotationQuery=error+and+retried') &&
  'the address is ' + location.hash);
JS

# ---- the dependency graph ---------------------------------------------------
# One more call, user-service back to order-service: two services that call
# each other get two edges whose labels sit close together.

cat >"$work/callback.json" <<EOF
[
 {"traceId":"7a6b5c4d3e2f10011223344556677889","id":"0c0ffee000000001","kind":"CLIENT","name":"post /orders/{id}/refresh",
  "timestamp":$((t0 + 3000)),"duration":2000,"localEndpoint":{"serviceName":"user-service"},
  "remoteEndpoint":{"serviceName":"order-service"}}
]
EOF
post_spans "$work/callback.json"
render "$base/#/dependencies" "$work/deps.html" "$shots/dependencies.png"
for service in api-gateway order-service user-service user-db load-1 load-2 load-3; do
    expect "$work/deps.html" "class=\"dep-node\" href=\"#/?serviceName=$service\" data-service=\"$service\"" \
        "dependency graph node for $service"
done
expect "$work/deps.html" 'data-parent="order-service" data-child="user-service" data-calls="1" data-errors="1"' \
    "dependency graph edge order-service → user-service"
expect "$work/deps.html" 'class="dep-edge error"' "an edge with errors, highlighted"
ok "the dependency graph shows the services and an edge with its counts"

probe "$base/#/dependencies" 1440 "the dependency graph" <<'JS'
await idle();
const label = (parent, child) => {
  const found = document.querySelector('.dep-label[data-parent="' + parent + '"][data-child="' + child + '"]');
  return found ? found.textContent : '(no edge)';
};
let text = label('order-service', 'user-service');
check('the edge order-service → user-service reads "1 call · 1 error"', text !== '1 call · 1 error' && 'it reads ' + text);
text = label('load-1', 'load-2');
check('the edge load-1 → load-2 reads "1,000 calls"', text !== '1,000 calls' && 'it reads ' + text);
const edge = document.querySelector('.dep-edge[data-parent="order-service"][data-child="user-service"]');
const stroke = getComputedStyle(edge).stroke;
const plain = getComputedStyle(document.querySelector('.dep-edge[data-errors="0"]')).stroke;
check('an edge with errors is drawn in another colour than one without', stroke === plain && 'both are ' + stroke);
const boxes = [...document.querySelectorAll('.dep-node rect, .dep-label rect')].map((rect) => rect.getBoundingClientRect());
let overlaps = 0;
boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
  if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps++;
}));
check('no two service boxes or edge labels overlap, with calls both ways between two services',
  !document.querySelector('.dep-label[data-parent="user-service"][data-child="order-service"]') ? 'no edge back'
    : overlaps && overlaps + ' overlapping pairs');
JS

echo "viewer-check: PASS (screenshots in $shots)"
