#!/usr/bin/env python3
"""The OpenTelemetry Python SDK exports a SERVER span and its CLIENT child to
the embedded collector; they are read back through the Zipkin JSON API.

  otel_sdk_check.py zipkin-proto PORT   its zipkin-proto-http exporter
                                        (Zipkin proto3, POST /api/v2/spans)
  otel_sdk_check.py otlp PORT           its OTLP/HTTP exporter
                                        (OTLP protobuf, POST /v1/traces)

Exits non-zero, with the assertion that failed, when what was stored is not
what was sent.
"""
import json
import sys
import urllib.request

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporter(mode, base):
    """The SDK's exporter for `mode`; what the collector makes of the event
    "cache miss" sent through it; the CLIENT span's remote service."""
    if mode == "zipkin-proto":
        from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
        # The Zipkin exporter writes an event as a JSON object: {"name": {attributes}},
        # and leaves the remote endpoint out.
        return ZipkinExporter(endpoint=f"{base}/api/v2/spans"), json.dumps({"cache miss": {}}), None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    # The collector maps OTLP by OpenTelemetry's Zipkin transformation: an
    # event without attributes is its name; peer.service names the remote side.
    return OTLPSpanExporter(endpoint=f"{base}/v1/traces"), "cache miss", "postgres"


def main():
    mode, port = sys.argv[1], sys.argv[2]
    base = f"http://127.0.0.1:{port}"
    inner, annotation, remote = exporter(mode, base)
    results = []

    class Recording(SpanExporter):
        def export(self, spans):
            result = inner.export(spans)
            results.append(result)
            return result

        def shutdown(self):
            inner.shutdown()

    service = f"{mode}-Service"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(Recording()))
    tracer = provider.get_tracer("conformance", "1.0")
    with tracer.start_as_current_span("GET /users/{id}", kind=SpanKind.SERVER) as server:
        server.set_attribute("http.route", "/users/{id}")
        server.set_attribute("http.response.status_code", 200)
        server.add_event("cache miss")
        with tracer.start_as_current_span("select", kind=SpanKind.CLIENT) as client:
            client.set_attribute("db.system", "postgresql")
            client.set_attribute("peer.service", "postgres")
            client.set_status(Status(StatusCode.ERROR, "connection reset"))
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS] * 2, results

    context = server.get_span_context()
    trace_id = format(context.trace_id, "032x")
    spans = json.load(urllib.request.urlopen(f"{base}/api/v2/trace/{trace_id}"))
    by_kind = {s["kind"]: s for s in spans}
    assert len(spans) == 2 and set(by_kind) == {"SERVER", "CLIENT"}, spans
    root, child = by_kind["SERVER"], by_kind["CLIENT"]
    assert root["traceId"] == trace_id and root["id"] == format(context.span_id, "016x"), root
    assert "parentId" not in root and child["parentId"] == root["id"], spans
    assert root["name"] == "get /users/{id}" and child["name"] == "select", spans
    assert root["localEndpoint"]["serviceName"] == service.lower(), root
    assert root["tags"]["http.route"] == "/users/{id}", root
    assert root["tags"]["http.response.status_code"] == "200", root
    assert child["tags"]["db.system"] == "postgresql", child
    assert [a["value"] for a in root["annotations"]] == [annotation], root
    assert "error" not in root["tags"], root
    assert child["tags"]["error"] == "connection reset", child
    assert child["tags"]["otel.status_code"] == "ERROR", child
    assert child["tags"]["peer.service"] == "postgres", child
    assert child.get("remoteEndpoint", {}).get("serviceName") == remote, child
    assert root["timestamp"] <= child["timestamp"] and root["duration"] >= child["duration"] >= 1, spans
    services = json.load(urllib.request.urlopen(f"{base}/api/v2/services"))
    assert services == [service.lower()], services


if __name__ == "__main__":
    main()
