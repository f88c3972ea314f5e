#!/usr/bin/env bash
# Conformance checks against the release binary, with real tools:
#   - spans exported for W3C, B3 (single and multi) and context-less traffic,
#     HTTP/1.1 and h2c, each batch validated against the Zipkin v2 API schema
#     (validate-zipkin-json, when the tool is present);
#   - the context the upstream receives continues the incoming trace;
#   - `promtool check metrics` on a live scrape of /metrics;
#   - a 1 GiB upload and a 1 GiB chunked download pass with flat memory;
#   - check-config exits 64 and names every problem;
#   - gRPC with a real peer (grpcio, installed with pip): calls and statuses
#     pass through the inbound listener and an outbound route, and the spans
#     follow OpenTelemetry's RPC conventions;
#   - SIGTERM drains and exits 0 with spans flushed;
#   - the embedded collector stores what OpenTelemetry's Zipkin proto3
#     exporter (PyPI, installed here when missing) sends;
#   - several collectors behind one sidecar (scripts/collectors_check.py):
#     each trace whole on one collector, its rendezvous owner; stopping one
#     moves only its share; with tail sampling built, errors kept and the
#     kept share of the rest checked;
#   - OTLP: tracehop's OTLP/HTTP export decoded with the official protobuf
#     definitions (opentelemetry-proto), and the OpenTelemetry SDK's OTLP/HTTP
#     exporter sending to the embedded collector (both from PyPI, in a
#     virtual environment of their own: they need a newer protobuf than the
#     Zipkin proto3 exporter);
#   - parent inference measured against apps that copy headers
#     (scripts/precision.sh): never contradicted, all confirmed alone.
# Usage: scripts/conformance.sh [path/to/tracehop]    (default target/release/tracehop)
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${1:-$root/target/release/tracehop}
validator=${ZIPKIN_VALIDATOR:-$root/../shared/tools/validate-zipkin-json}
work=$(mktemp -d)
pids=()
passed=0

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "conformance: FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "conformance: ok: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # PORT: wait until something listens (10 s)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "nothing listening on port $1"
}
wait_spans() {  # DIR N: wait until the sink saved N spans in DIR (10 s)
  local count=0
  for _ in $(seq 100); do
    count=$(python3 -c 'import glob,json,sys; print(sum(len(json.load(open(f))) for f in glob.glob(sys.argv[1] + "/batch-*.json")))' "$1" 2>/dev/null || echo 0)
    [ "$count" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "expected $2 spans at the sink, got $count"
}

[ -x "$bin" ] || fail "binary $bin not found (cargo build --release)"

up=$(free_port); sink=$(free_port); proxy=$(free_port); admin=$(free_port)
mkdir -p "$work/spans"
python3 "$here/fake_services.py" upstream "$up" & pids+=($!)
python3 "$here/fake_services.py" sink "$sink" "$work/spans" & pids+=($!)
wait_port "$up"; wait_port "$sink"

cat > "$work/config.yaml" <<YAML
service:
  name: conformance
inbound:
  listen: 127.0.0.1:$proxy
  upstream: http://127.0.0.1:$up
  routes: ["/users/{id}"]
admin:
  listen: 127.0.0.1:$admin
export:
  zipkin: http://127.0.0.1:$sink/api/v2/spans
  batch_interval: 100ms
log:
  format: json
shutdown:
  grace_period: 5s
YAML

# --- check-config --------------------------------------------------------
"$bin" check-config "$work/config.yaml" > "$work/effective.yaml" || fail "check-config rejected a valid file"
grep -q "name: conformance" "$work/effective.yaml" || fail "check-config did not print the effective config"
printf 'inbound:\n  listen: nowhere\n  timeouts: {idle: 5 days}\nexport:\n  batch_size: 0\n' > "$work/bad.yaml"
set +e; "$bin" check-config "$work/bad.yaml" 2> "$work/bad.txt"; code=$?; set -e
[ "$code" = 64 ] || fail "check-config exit code $code, want 64"
for path in inbound.listen inbound.upstream inbound.timeouts.idle export.batch_size; do
  grep -q "$path" "$work/bad.txt" || fail "check-config did not name $path: $(cat "$work/bad.txt")"
done
ok "check-config prints the effective config; exits 64 naming every problem"

# --- traffic with every context format ------------------------------------
"$bin" run --config "$work/config.yaml" 2> "$work/sidecar.log" & sidecar=$!; pids+=($sidecar)
wait_port "$proxy"; wait_port "$admin"
base=http://127.0.0.1:$proxy
w3c_trace=4bf92f3577b34da6a3ce929d0e0e4736
curl -sf "$base/users/1" -H "traceparent: 00-$w3c_trace-00f067aa0ba902b7-01" -H 'tracestate: congo=t61rcWkgMzE' > "$work/w3c.json"
curl -sf "$base/users/2" -H 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' > "$work/b3single.json"
curl -sf "$base/orders/3" -H 'X-B3-TraceId: a3ce929d0e0e4736' -H 'X-B3-SpanId: 00f067aa0ba902b7' -H 'X-B3-Sampled: 1' > "$work/b3multi.json"
curl -sf "$base/plain" > "$work/none.json"
curl -sf --http2-prior-knowledge "$base/h2" > "$work/h2.json"
curl -sf "$base/bad" -H 'traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01' > "$work/invalid.json"

python3 - "$work" "$w3c_trace" <<'PY' || fail "upstream did not receive the continued context"
import json, sys
work, trace = sys.argv[1], sys.argv[2]
h = lambda name: json.load(open(f"{work}/{name}.json"))["headers"]
tp = h("w3c")["traceparent"].split("-")
assert tp[1] == trace and tp[2] != "00f067aa0ba902b7" and tp[3] == "01", tp
assert h("w3c")["tracestate"] == "congo=t61rcWkgMzE"
assert h("b3single")["b3"].startswith("80f198ee56343ba864fe8b2a57d3eff7-"), h("b3single")
assert h("b3multi")["x-b3-traceid"] == "a3ce929d0e0e4736", h("b3multi")
assert h("none")["traceparent"].startswith("00-"), h("none")
bad = h("invalid")["traceparent"].split("-")
assert bad[1] != "0" * 32, bad
PY
ok "the upstream receives each format continued with the sidecar's span as parent"

wait_spans "$work/spans" 6
python3 - "$work/spans" "$w3c_trace" <<'PY' || fail "exported spans are wrong"
import glob, json, sys
spans = [s for f in sorted(glob.glob(sys.argv[1] + "/batch-*.json")) for s in json.load(open(f))]
by_path = {s["tags"]["url.path"]: s for s in spans}
w3c = by_path["/users/1"]
assert w3c["traceId"] == sys.argv[2] and w3c["parentId"] == "00f067aa0ba902b7", w3c
assert w3c["name"] == "get /users/{id}" and w3c["kind"] == "SERVER", w3c
assert by_path["/orders/3"]["traceId"] == "a3ce929d0e0e4736"
assert by_path["/h2"]["tags"]["network.protocol.version"] == "2"
assert "parentId" not in by_path["/plain"]
assert all(s["localEndpoint"]["serviceName"] == "conformance" for s in spans)
for f in glob.glob(sys.argv[1] + "/batch-*.json.headers"):
    assert json.load(open(f)).get("b3") == "0", f
PY
ok "one SERVER span per request, correctly parented; uploads carry b3: 0"

if [ -x "$validator" ] && python3 -c 'import jsonschema, yaml' 2>/dev/null; then
  for f in "$work"/spans/batch-*.json; do
    "$validator" "$f" > "$work/validate.txt" || fail "$(basename "$f") violates the Zipkin v2 API: $(cat "$work/validate.txt")"
  done
  ok "every exported batch validates against the Zipkin v2 API schema"
else
  echo "conformance: skip: Zipkin schema validation (validator or python jsonschema/pyyaml missing)"
fi

# --- metrics -----------------------------------------------------------------
curl -sf "http://127.0.0.1:$admin/metrics" > "$work/metrics.txt"
if command -v promtool > /dev/null; then
  promtool check metrics < "$work/metrics.txt" > "$work/promtool.txt" 2>&1 || fail "promtool: $(cat "$work/promtool.txt")"
  ok "promtool check metrics accepts a live scrape"
else
  echo "conformance: skip: promtool not installed"
fi
# Summed over the server paths (the HTTP/2 request is hyper's).
counted=$(awk '/^tracehop_requests_total\{/ && /direction="inbound"/ && /method="GET"/ && /status_class="2xx"/ { n += $NF } END { print n + 0 }' "$work/metrics.txt")
[ "$counted" = 6 ] || fail "request counter wrong ($counted, want 6): $(grep requests_total "$work/metrics.txt")"
grep -q 'tracehop_requests_total{direction="inbound",fallback="http2",method="GET",path="hyper",status_class="2xx"} 1' "$work/metrics.txt" \
  || fail "the HTTP/2 request is not counted on hyper's path: $(grep requests_total "$work/metrics.txt")"
grep -q 'tracehop_trace_context_total{direction="inbound",format="invalid"} 1' "$work/metrics.txt" || fail "invalid context not counted"
grep -q '^tracehop_spans_exported_total{exporter="zipkin"} ' "$work/metrics.txt" || fail "export metrics lack the exporter label"
grep -q 'exporter="otlp"' "$work/metrics.txt" && fail "an exporter that is not configured has series"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")" = 200 ] || fail "/readyz not 200"
ok "metrics count requests and context formats; /readyz is 200"

# --- streaming with flat memory -------------------------------------------
truncate -s 1G "$work/upload.bin"
sent=$(curl -sf -T "$work/upload.bin" "$base/upload")
[ "$sent" = 1073741824 ] || fail "upload: upstream counted $sent bytes"
got=$(curl -sf "$base/big?bytes=1073741824" | wc -c)
[ "$got" = 1073741824 ] || fail "download: got $got bytes"
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$sidecar/status")
[ "$peak_kib" -lt 65536 ] || fail "peak RSS ${peak_kib} KiB after 1 GiB each way: bodies are being buffered"
ok "1 GiB upload and 1 GiB chunked download stream through; peak RSS ${peak_kib} KiB"

# --- TLS with an RSA key, no config file ----------------------------------------
if command -v openssl > /dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$work/rsa.key" -out "$work/rsa.crt" 2> /dev/null
  tls_port=$(free_port); tls_admin=$(free_port)
  "$bin" run --listen "127.0.0.1:$tls_port" --admin "127.0.0.1:$tls_admin" --upstream "http://127.0.0.1:$up" \
    --zipkin "http://127.0.0.1:$sink/api/v2/spans" --tls-cert "$work/rsa.crt" --tls-key "$work/rsa.key" \
    2> "$work/tls.log" & tls_pid=$!; pids+=($tls_pid)
  wait_port "$tls_port"
  curl -sf --cacert "$work/rsa.crt" "https://127.0.0.1:$tls_port/tls" > "$work/tls.json" || fail "HTTPS/1.1 with an RSA key failed: $(cat "$work/tls.log")"
  curl -sf --http2 --cacert "$work/rsa.crt" -o /dev/null -w '%{http_version}' "https://127.0.0.1:$tls_port/tls2" > "$work/tls2.txt"
  [ "$(cat "$work/tls2.txt")" = 2 ] || fail "HTTP/2 over TLS (ALPN h2) not negotiated: $(cat "$work/tls2.txt")"
  grep -q '"x-forwarded-proto": "https"' "$work/tls.json" || fail "the app was not told the request came over HTTPS"
  kill -TERM "$tls_pid"; wait "$tls_pid" || true
  ok "--tls-cert/--tls-key with an RSA key: HTTPS over HTTP/1.1 and HTTP/2 (ALPN)"
else
  echo "conformance: skip: openssl not installed (RSA TLS check)"
fi

# --- gRPC with a real peer (grpcio) --------------------------------------------
# A second sidecar in front of a grpcio server, with an outbound route to it;
# a grpcio client calls through each listener.
if python3 -c 'import grpc' 2> /dev/null \
  || python3 -m pip install -q --disable-pip-version-check grpcio > "$work/pip.txt" 2>&1; then
  g_app=$(free_port); g_in=$(free_port); g_out=$(free_port); g_admin=$(free_port); g_sink=$(free_port)
  mkdir -p "$work/grpc-spans"
  python3 "$here/fake_services.py" sink "$g_sink" "$work/grpc-spans" & pids+=($!)
  python3 "$here/grpc_peer.py" server "$g_app" & pids+=($!)
  wait_port "$g_sink"; wait_port "$g_app"
  cat > "$work/grpc.yaml" <<YAML
service:
  name: greeter-app
inbound:
  listen: 127.0.0.1:$g_in
  upstream: http://127.0.0.1:$g_app
outbound:
  routes:
    - name: greeter
      listen: 127.0.0.1:$g_out
      upstream: http://127.0.0.1:$g_app
admin:
  listen: 127.0.0.1:$g_admin
export:
  zipkin: http://127.0.0.1:$g_sink/api/v2/spans
  batch_interval: 100ms
YAML
  "$bin" run --config "$work/grpc.yaml" 2> "$work/grpc.log" & pids+=($!)
  wait_port "$g_in"; wait_port "$g_out"
  # Codes: 0 OK, 3 INVALID_ARGUMENT, 5 NOT_FOUND, 13 INTERNAL, 14 UNAVAILABLE.
  python3 "$here/grpc_peer.py" client "$g_in" 0 3 5 13 14 || fail "gRPC through the inbound listener"
  python3 "$here/grpc_peer.py" client "$g_out" 0 5 14 || fail "gRPC through the outbound route"
  wait_spans "$work/grpc-spans" 8
  python3 - "$work/grpc-spans" <<'PY' || fail "gRPC spans do not follow the RPC conventions"
import glob, json, sys
spans = [s for f in sorted(glob.glob(sys.argv[1] + "/batch-*.json")) for s in json.load(open(f))]
assert len(spans) == 8, spans
fails = {"SERVER": {13, 14}, "CLIENT": {5, 14}}  # of the codes each side saw
for span in spans:
    tags, code = span["tags"], int(span["tags"]["rpc.grpc.status_code"])
    assert span["name"] == "helloworld.Greeter/SayHello", span
    assert tags["rpc.system"] == "grpc" and tags["rpc.method"] == "SayHello", span
    assert tags["rpc.service"] == "helloworld.Greeter", span
    error = f"grpc-status {code}" if code in fails[span["kind"]] else None
    assert tags.get("error") == error, span
kinds = sorted((s["kind"], int(s["tags"]["rpc.grpc.status_code"])) for s in spans)
assert kinds == [("CLIENT", 0), ("CLIENT", 5), ("CLIENT", 14), ("SERVER", 0), ("SERVER", 3),
                 ("SERVER", 5), ("SERVER", 13), ("SERVER", 14)], kinds
PY
  ok "grpcio client and server through inbound and outbound: statuses pass, spans follow the RPC conventions"
else
  echo "conformance: skip: gRPC with grpcio (pip could not install it: $(tail -1 "$work/pip.txt"))"
fi

# --- proto3 ingest with OpenTelemetry's Zipkin protobuf exporter ----------------
# The OpenTelemetry Python SDK sends two spans through its zipkin-proto-http
# exporter (Content-Type: application/x-protobuf) to the embedded collector;
# they are read back through the Zipkin JSON query API.
otel_ready=yes
if ! python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.zipkin.proto.http' 2> /dev/null; then
  pip install -q opentelemetry-sdk opentelemetry-exporter-zipkin-proto-http > "$work/pip-otel.log" 2>&1 || otel_ready=no
fi
if [ "$otel_ready" = yes ]; then
  coll=$(free_port)
  "$bin" collector --listen "127.0.0.1:$coll" 2> "$work/collector.log" & pids+=($!)
  wait_port "$coll"
  python3 "$here/otel_sdk_check.py" zipkin-proto "$coll" \
    || fail "spans sent as Zipkin proto3 by the OpenTelemetry SDK were not stored as sent"
  ok "the OpenTelemetry SDK's Zipkin proto3 exporter: spans stored and read back as sent"
else
  echo "conformance: skip: proto3 ingest with OpenTelemetry (pip install failed: $(tail -1 "$work/pip-otel.log"))"
fi

# --- OTLP with OpenTelemetry's own code -------------------------------------------
otlp_python=""
if python3 -m venv "$work/otlp-venv" > "$work/venv.log" 2>&1 \
  && "$work/otlp-venv/bin/python" -m pip install -q --disable-pip-version-check \
    opentelemetry-proto opentelemetry-sdk opentelemetry-exporter-otlp-proto-http > "$work/pip-otlp.log" 2>&1; then
  otlp_python="$work/otlp-venv/bin/python"
fi
if [ -n "$otlp_python" ]; then
  # (a) A sidecar exporting OTLP (gzip) to a sink; the official definitions decode it.
  o_sink=$(free_port); o_in=$(free_port); o_out=$(free_port); o_admin=$(free_port)
  mkdir -p "$work/otlp-spans"
  python3 "$here/fake_services.py" otlp-sink "$o_sink" "$work/otlp-spans" & pids+=($!)
  wait_port "$o_sink"
  cat > "$work/otlp.yaml" <<YAML
service:
  name: otlp-conformance
inbound:
  listen: 127.0.0.1:$o_in
  upstream: http://127.0.0.1:$up
  routes: ["/users/{id}"]
outbound:
  routes:
    - name: users
      listen: 127.0.0.1:$o_out
      upstream: http://127.0.0.1:$up
admin:
  listen: 127.0.0.1:$o_admin
export:
  otlp: {url: http://127.0.0.1:$o_sink/v1/traces, gzip: true}
  batch_interval: 100ms
YAML
  TRACEHOP_POD_NAME=otlp-7d9-x2x TRACEHOP_POD_NAMESPACE=shop "$bin" run --config "$work/otlp.yaml" 2> "$work/otlp.log" & o_pid=$!; pids+=($o_pid)
  wait_port "$o_in"; wait_port "$o_out"
  o_trace=0af7651916cd43dd8448eb211c80319c
  curl -sf -o /dev/null "http://127.0.0.1:$o_in/users/7" -H "traceparent: 00-$o_trace-00f067aa0ba902b7-01" || fail "OTLP: inbound request"
  curl -sf -o /dev/null "http://127.0.0.1:$o_out/orders/9" -H "traceparent: 00-$o_trace-b7ad6b7169203331-01" || fail "OTLP: outbound request"
  "$otlp_python" - "$work/otlp-spans" "$o_trace" <<'PY' || fail "tracehop's OTLP export does not decode as the official definitions say"
import glob, json, sys, time
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

def load():
    requests = []
    for path in sorted(glob.glob(sys.argv[1] + "/batch-*.pb")):
        request = ExportTraceServiceRequest()
        request.ParseFromString(open(path, "rb").read())
        requests.append((path, request))
    return requests

deadline = time.time() + 10
while True:
    requests = load()
    spans = [(rs, s) for _, r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    if len(spans) >= 2 or time.time() > deadline:
        break
    time.sleep(0.1)
assert len(spans) == 2, spans
trace = sys.argv[2]
by_kind = {span.kind: (resource, span) for resource, span in spans}
assert set(by_kind) == {Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT}, by_kind
for resource, span in by_kind.values():
    attrs = {a.key: a.value for a in resource.resource.attributes}
    assert attrs["service.name"].string_value == "otlp-conformance", attrs
    assert attrs["k8s.pod.name"].string_value == "otlp-7d9-x2x", attrs
    assert attrs["k8s.namespace.name"].string_value == "shop", attrs
    assert len(attrs["service.instance.id"].string_value) == 36, attrs
    assert resource.scope_spans[0].scope.name == "tracehop", resource
    assert span.trace_id.hex() == trace and len(span.span_id) == 8, span
    assert 1_000_000_000_000_000_000 < span.start_time_unix_nano < span.end_time_unix_nano, span
server = by_kind[Span.SPAN_KIND_SERVER][1]
client = by_kind[Span.SPAN_KIND_CLIENT][1]
assert server.parent_span_id.hex() == "00f067aa0ba902b7", server
assert client.parent_span_id.hex() == "b7ad6b7169203331", client
assert server.name == "GET /users/{id}", server.name
attrs = {a.key: a.value for a in server.attributes}
assert attrs["http.request.method"].string_value == "GET", attrs
assert attrs["http.route"].string_value == "/users/{id}", attrs
assert attrs["http.response.status_code"].int_value == 200, attrs
assert attrs["network.peer.address"].string_value == "127.0.0.1", attrs
assert not server.HasField("status") or server.status.code == 0, server.status
client_attrs = {a.key: a.value for a in client.attributes}
assert client_attrs["peer.service"].string_value == "users", client_attrs
for path, _ in requests:
    headers = json.load(open(path + ".headers"))
    assert headers["content-type"] == "application/x-protobuf", headers
    assert headers["content-encoding"] == "gzip" and headers["b3"] == "0", headers
PY
  curl -sf "http://127.0.0.1:$o_admin/metrics" > "$work/otlp-metrics.txt"
  grep -q '^tracehop_spans_exported_total{exporter="otlp"} 2$' "$work/otlp-metrics.txt" \
    || fail "OTLP exports not counted: $(grep exporter= "$work/otlp-metrics.txt")"
  kill -TERM "$o_pid"; wait "$o_pid" || true
  ok "tracehop's OTLP/HTTP export (gzip) decodes with opentelemetry-proto: ids, kinds, service.name and pod metadata, attributes"

  # (b) The OpenTelemetry SDK's OTLP/HTTP exporter to the embedded collector.
  o_coll=$(free_port)
  "$bin" collector --listen "127.0.0.1:$o_coll" 2> "$work/otlp-collector.log" & pids+=($!)
  wait_port "$o_coll"
  "$otlp_python" "$here/otel_sdk_check.py" otlp "$o_coll" \
    || fail "spans sent by the OpenTelemetry SDK's OTLP exporter were not stored as sent"
  ok "the OpenTelemetry SDK's OTLP/HTTP exporter: spans stored by the embedded collector and read back as sent"
else
  echo "conformance: skip: OTLP with OpenTelemetry (venv or pip failed: $(tail -1 "$work/pip-otlp.log" 2> /dev/null || tail -1 "$work/venv.log"))"
fi

# --- several collectors, one trace each ---------------------------------------
# Three `tracehop collector` processes behind one sidecar listing all three.
if python3 "$here/collectors_check.py" "$bin" "$work/collectors" > "$work/collectors.out" 2>&1; then
  while IFS= read -r line; do
    case "$line" in
      ok:*) ok "several collectors: ${line#ok: }" ;;
      skip:*) echo "conformance: skip: several collectors: ${line#skip: }" ;;
    esac
  done < "$work/collectors.out"
else
  cat "$work/collectors.out" >&2
  fail "several collectors: $(tail -1 "$work/collectors.out")"
fi

# --- graceful shutdown -------------------------------------------------------
grep -q '"trace_id"' "$work/sidecar.log" || fail "access log lines carry no trace id"
kill -TERM "$sidecar"
set +e; wait "$sidecar"; code=$?; set -e
[ "$code" = 0 ] || fail "exit code $code after SIGTERM, want 0"
grep -q '"stopped"' "$work/sidecar.log" || grep -q 'stopped' "$work/sidecar.log" || fail "no shutdown log line"
ok "SIGTERM: drained and exited 0; JSON access log lines carry the trace id"

# --- inferred parents: precision against apps that copy headers -------------
# The demo topology at concurrency 1, 2, 4, 8, 16 (3 s each; the table
# in the README comes from this script).
bash "$here/precision.sh" "$bin" --seconds 3 > "$work/precision.md" \
  || { cat "$work/precision.md" >&2; fail "parent inference: contradicted > 0, or not every call confirmed at concurrency 1"; }
cat "$work/precision.md"
ok "parent inference never contradicts the real parent (concurrency 1-16); every call confirmed at concurrency 1"

echo "conformance: $passed checks passed"
