use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::export::sample::server_span;
use crate::span::{GrpcCall, SpanId, Tag, TraceId};

fn encode_one(span: &Span, options: &EncodeOptions) -> Value {
    let mut out = Vec::new();
    encode_spans(std::slice::from_ref(span), options, &mut out);
    let mut list: Vec<Value> = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(list.len(), 1);
    list.remove(0)
}

fn encode(span: &Span) -> Value {
    encode_one(span, &EncodeOptions::default())
}

#[test]
fn server_span_has_the_zipkin_v2_shape() {
    let value = encode(&server_span());
    assert_eq!(
        value,
        json!({
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "parentId": "0102030405060708",
            "id": "00f067aa0ba902b7",
            "kind": "SERVER",
            "name": "get /users/{id}",
            "timestamp": 1_700_000_000_123_456u64,
            "duration": 1500,
            "localEndpoint": {"serviceName": "user-service"},
            "remoteEndpoint": {"ipv4": "10.1.2.3", "port": 54321},
            "tags": {
                "http.request.method": "GET",
                "url.path": "/users/42",
                "url.scheme": "http",
                "server.address": "users.local",
                "server.port": "8080",
                "http.route": "/users/{id}",
                "http.response.status_code": "200",
                "network.protocol.version": "1.1",
                "user_agent.original": "curl/8.5.0",
                "client.address": "10.1.2.3",
                "http.response.body.size": "512",
            }
        })
    );
}

#[test]
fn sixty_four_bit_trace_ids_stay_sixteen_digits() {
    let mut span = server_span();
    span.trace_id = TraceId::new(0xa3ce929d0e0e4736).expect("non-zero");
    span.parent_id = None;
    let value = encode(&span);
    assert_eq!(value["traceId"], "a3ce929d0e0e4736");
    assert!(value.get("parentId").is_none());
}

#[test]
fn client_span_uses_route_remote_service_and_debug() {
    let mut span = server_span();
    span.kind = Kind::Client;
    span.debug = true;
    span.duration_us = 0;
    span.remote = Endpoint {
        service_name: Some(Arc::from("Order-Service")),
        addr: Some("[2001:db8::1]:9000".parse().expect("valid address")),
    };
    span.http.route = Some(Arc::from("/Users/{userId}"));
    span.http.version = http::Version::HTTP_2;
    let value = encode(&span);
    assert_eq!(value["kind"], "CLIENT");
    assert_eq!(value["debug"], true);
    assert_eq!(value["duration"], 1, "Zipkin requires duration >= 1");
    assert_eq!(value["name"], "get /users/{userid}");
    assert_eq!(value["tags"]["http.route"], "/Users/{userId}");
    assert_eq!(value["tags"]["network.protocol.version"], "2");
    assert_eq!(
        value["remoteEndpoint"],
        json!({"serviceName": "order-service", "ipv6": "2001:db8::1", "port": 9000})
    );
    assert!(
        value.get("shared").is_none(),
        "CLIENT spans are never shared"
    );
    assert!(value["tags"].get("client.address").is_none());
}

#[test]
fn remote_endpoint_has_only_known_fields() {
    let mut span = server_span();
    span.remote = Endpoint::default();
    assert!(encode(&span).get("remoteEndpoint").is_none());
    span.remote.service_name = Some(Arc::from("db"));
    assert_eq!(
        encode(&span)["remoteEndpoint"],
        json!({"serviceName": "db"})
    );
    span.remote = Endpoint {
        service_name: None,
        addr: Some("[::ffff:10.0.0.9]:0".parse().expect("valid address")),
    };
    let value = encode(&span);
    assert_eq!(value["remoteEndpoint"], json!({"ipv4": "10.0.0.9"}));
    assert_eq!(value["tags"]["client.address"], "10.0.0.9");
}

#[test]
fn names_are_lowercase_templates() {
    let cases: [(&str, &str, Option<&str>, &str); 7] = [
        ("GET", "/users/42?x=1", None, "get /users/{id}"),
        ("POST", "/Orders", None, "post /orders"),
        (
            "DELETE",
            "/a/123e4567-e89b-12d3-a456-426614174000",
            None,
            "delete /a/{id}",
        ),
        (
            "GET",
            "/blobs/4bf92f3577b34da6a3ce",
            None,
            "get /blobs/{id}",
        ),
        ("GET", "/", None, "get /"),
        (
            "PUT",
            "/users/42",
            Some("/users/{user}"),
            "put /users/{user}",
        ),
        ("BREW", "/pot/7", None, "brew /pot/{id}"),
    ];
    for (method, target, route, expected) in cases {
        let mut span = server_span();
        span.http.method = http::Method::from_bytes(method.as_bytes()).expect("valid method");
        span.http.target = Some(target.parse().expect("valid target"));
        span.http.route = route.map(Arc::from);
        assert_eq!(encode(&span)["name"], expected, "{method} {target}");
    }
}

#[test]
fn missing_target_is_the_root_route_and_connect_names_the_host() {
    let mut span = server_span();
    span.http.target = None;
    let value = encode(&span);
    assert_eq!(value["name"], "get /");
    assert!(value["tags"].get("url.path").is_none());

    span.http.method = http::Method::CONNECT;
    span.http.host = Some(http::HeaderValue::from_static("API.example.com:443"));
    let value = encode(&span);
    assert_eq!(value["name"], "connect api.example.com:443");
    assert!(value["tags"].get("http.route").is_none());
    assert_eq!(value["tags"]["server.address"], "API.example.com");
    assert_eq!(value["tags"]["server.port"], "443");
}

#[test]
fn error_tag_follows_message_then_status_then_grpc() {
    use Kind::{Client, Server};
    // (kind, error message, status, gRPC call's status) -> error tag
    type Case = (
        Kind,
        Option<&'static str>,
        Option<u16>,
        Option<u32>,
        Option<&'static str>,
    );
    let cases: [Case; 12] = [
        (Server, None, Some(200), None, None),
        (Server, None, Some(404), None, None),
        (Server, None, Some(503), None, Some("503")),
        (Server, None, None, None, None),
        (
            Server,
            Some("upstream connect refused"),
            None,
            None,
            Some("upstream connect refused"),
        ),
        (Server, None, Some(200), Some(14), Some("grpc-status 14")),
        (Server, None, Some(200), Some(0), None),
        // NOT_FOUND is the caller's problem: not a SERVER error...
        (Server, None, Some(200), Some(5), None),
        // ...but the CLIENT span failed.
        (Client, None, Some(200), Some(5), Some("grpc-status 5")),
        (Client, None, Some(200), Some(0), None),
        (Client, None, Some(503), Some(14), Some("503")),
        (
            Client,
            Some("upstream timed out"),
            None,
            Some(2),
            Some("upstream timed out"),
        ),
    ];
    for (kind, message, status, grpc, expected) in cases {
        let mut span = server_span();
        span.kind = kind;
        span.error = message.map(Cow::Borrowed);
        span.http.status = status;
        span.http.grpc = grpc.map(|code| GrpcCall { status: Some(code) });
        let value = encode(&span);
        let tags = &value["tags"];
        assert_eq!(
            tags.get("error").and_then(Value::as_str),
            expected,
            "{kind:?} {message:?} {status:?} {grpc:?}"
        );
        assert_eq!(
            tags.get("http.response.status_code")
                .and_then(Value::as_str),
            status.map(|s| s.to_string()).as_deref()
        );
        let grpc_tag = grpc.map(|g| g.to_string());
        assert_eq!(
            tags.get("rpc.grpc.status_code").and_then(Value::as_str),
            grpc_tag.as_deref()
        );
    }
}

/// A gRPC span of `kind` for `POST {path}` over HTTP/2.
fn grpc_span(kind: Kind, path: &'static str, status: Option<u32>) -> Span {
    let mut span = server_span();
    span.kind = kind;
    span.http.method = http::Method::POST;
    span.http.target = Some(http::uri::PathAndQuery::from_static(path));
    span.http.version = http::Version::HTTP_2;
    span.http.grpc = Some(GrpcCall { status });
    span
}

#[test]
fn grpc_calls_follow_the_opentelemetry_rpc_conventions() {
    let value = encode(&grpc_span(
        Kind::Server,
        "/helloworld.Greeter/SayHello",
        Some(0),
    ));
    assert_eq!(value["name"], "helloworld.Greeter/SayHello");
    let tags = &value["tags"];
    assert_eq!(tags["rpc.system"], "grpc");
    assert_eq!(tags["rpc.service"], "helloworld.Greeter");
    assert_eq!(tags["rpc.method"], "SayHello");
    assert_eq!(tags["rpc.grpc.status_code"], "0");
    assert_eq!(tags["http.request.method"], "POST");
    assert_eq!(tags["network.protocol.version"], "2");
    assert!(tags.get("error").is_none(), "{value}");

    // A CLIENT span has the same name and tags.
    let value = encode(&grpc_span(
        Kind::Client,
        "/grpc.health.v1.Health/Check",
        Some(0),
    ));
    assert_eq!(value["name"], "grpc.health.v1.Health/Check");
    assert_eq!(value["tags"]["rpc.service"], "grpc.health.v1.Health");
    assert_eq!(value["tags"]["rpc.method"], "Check");

    // No status (no response came back): no status tag, the rest stays.
    let value = encode(&grpc_span(
        Kind::Server,
        "/helloworld.Greeter/SayHello",
        None,
    ));
    assert_eq!(value["tags"]["rpc.method"], "SayHello");
    assert!(value["tags"].get("rpc.grpc.status_code").is_none());

    // A path that names no service and method: the HTTP name, and only
    // `rpc.system` of the RPC tags.
    let value = encode(&grpc_span(Kind::Server, "/not/a/grpc/path", Some(12)));
    assert_eq!(value["name"], "post /not/a/grpc/path");
    let tags = &value["tags"];
    assert_eq!(tags["rpc.system"], "grpc");
    assert!(tags.get("rpc.service").is_none() && tags.get("rpc.method").is_none());
    assert_eq!(tags["rpc.grpc.status_code"], "12");
    assert_eq!(tags["error"], "grpc-status 12");

    // Not a gRPC call (no gRPC content type): no RPC tags, the HTTP name.
    let mut span = grpc_span(Kind::Server, "/helloworld.Greeter/SayHello", None);
    span.http.grpc = None;
    let value = encode(&span);
    assert_eq!(value["name"], "post /helloworld.greeter/sayhello");
    let keys: Vec<&String> = value["tags"].as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| !k.starts_with("rpc.")), "{keys:?}");
}

#[test]
fn escapes_tags_and_writes_bad_header_bytes_lossily() {
    let mut span = server_span();
    span.local_service = Arc::from("we\"ird\nsvc");
    span.http.user_agent =
        Some(http::HeaderValue::from_bytes(b"agent \xff\xfe \"q\"").expect("obs-text is allowed"));
    span.http.host = Some(http::HeaderValue::from_bytes(b"h\xe9st").expect("obs-text is allowed"));
    span.tags.push(Tag {
        key: Cow::Borrowed("http.request.header.x-note"),
        value: Cow::Borrowed("tab\there \\ ctrl\u{1}"),
    });
    let value = encode(&span);
    assert_eq!(value["localEndpoint"]["serviceName"], "we\"ird\nsvc");
    assert_eq!(
        value["tags"]["user_agent.original"],
        "agent \u{fffd}\u{fffd} \"q\""
    );
    assert_eq!(value["tags"]["server.address"], "h\u{fffd}st");
    assert_eq!(
        value["tags"]["http.request.header.x-note"],
        "tab\there \\ ctrl\u{1}"
    );
}

#[test]
fn span_tags_then_resource_tags_are_appended() {
    let mut span = server_span();
    span.tags.push(Tag {
        key: Cow::Borrowed("sampling.reason"),
        value: Cow::Borrowed("error"),
    });
    span.http.request_body_bytes = 10;
    let options = EncodeOptions {
        resource_tags: vec![("k8s.pod.name".into(), "users-7d9f".into())],
        service_instance_id: Some("not a Zipkin tag".into()),
    };
    let mut out = Vec::new();
    encode_spans(std::slice::from_ref(&span), &options, &mut out);
    let text = String::from_utf8(out).expect("UTF-8");
    let order = [
        "\"client.address\"",
        "\"sampling.reason\"",
        "\"k8s.pod.name\"",
    ];
    let positions: Vec<usize> = order.iter().map(|k| text.find(k).expect(k)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let value = encode_one(&span, &options);
    assert_eq!(value["tags"]["http.request.body.size"], "10");
    assert_eq!(value["tags"]["k8s.pod.name"], "users-7d9f");
}

#[test]
fn encodes_lists() {
    let mut out = Vec::new();
    encode_spans(&[], &EncodeOptions::default(), &mut out);
    assert_eq!(out, b"[]");
    out.clear();
    let mut second = server_span();
    second.id = SpanId::new(2).expect("non-zero");
    encode_spans(
        &[server_span(), second],
        &EncodeOptions::default(),
        &mut out,
    );
    let list: Vec<Value> = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(list[1]["id"], "0000000000000002");
}

#[test]
fn each_span_keeps_its_own_service_and_method() {
    // The encoder keeps the last local endpoint rendered: a span of another
    // service (or the same name in another allocation) must still be right.
    let names = ["Orders", "users", "Orders", "orders"];
    let methods = [
        http::Method::POST,
        http::Method::from_bytes(b"PURGE").expect("token"),
        http::Method::DELETE,
        http::Method::GET,
    ];
    let list: Vec<Span> = names
        .iter()
        .zip(&methods)
        .map(|(name, method)| {
            let mut span = server_span();
            span.local_service = Arc::from(*name);
            span.http.method = method.clone();
            span
        })
        .collect();
    let mut out = Vec::new();
    encode_spans(&list, &EncodeOptions::default(), &mut out);
    let values: Vec<Value> = serde_json::from_slice(&out).expect("valid JSON");
    let seen: Vec<(&str, &str, &str)> = values
        .iter()
        .map(|v| {
            (
                v["localEndpoint"]["serviceName"].as_str().unwrap(),
                v["name"].as_str().unwrap(),
                v["tags"]["http.request.method"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("orders", "post /users/{id}", "POST"),
            ("users", "purge /users/{id}", "PURGE"),
            ("orders", "delete /users/{id}", "DELETE"),
            ("orders", "get /users/{id}", "GET"),
        ]
    );
}

#[test]
fn kept_hosts_agents_and_peers_never_leak_into_the_next_span() {
    // The encoder keeps the last host's, user agent's and peer's rendering:
    // a run of spans through one encoder must read exactly as each span
    // encoded alone, whether the values repeat, change, vanish or are too
    // long to keep.
    let long = format!("agent/{}", "x".repeat(300));
    let variants: [(Option<&str>, Option<&str>, Option<&str>); 8] = [
        (
            Some("users.local:8080"),
            Some("curl/8.5.0"),
            Some("10.1.2.3:1"),
        ),
        (
            Some("users.local:8080"),
            Some("curl/8.5.0"),
            Some("10.1.2.3:2"),
        ),
        (Some("users.local"), Some(""), Some("[::ffff:10.1.2.3]:3")),
        (None, None, None),
        (Some(""), Some(""), Some("[2001:db8::1]:4")),
        (Some("[::1]:9"), Some(long.as_str()), Some("10.1.2.4:5")),
        (Some("[::1]:9"), Some(long.as_str()), Some("10.1.2.4:5")),
        (
            Some("users.local:8080"),
            Some("say \"hi\""),
            Some("10.1.2.3:1"),
        ),
    ];
    let list: Vec<Span> = variants
        .iter()
        .map(|(host, agent, peer)| {
            let mut span = server_span();
            span.http.host = host.map(|h| http::HeaderValue::from_str(h).unwrap());
            span.http.user_agent = agent.map(|a| http::HeaderValue::from_str(a).unwrap());
            span.remote.addr = peer.map(|p| p.parse().unwrap());
            span
        })
        .collect();
    let mut out = Vec::new();
    encode_spans(&list, &EncodeOptions::default(), &mut out);
    let together: Vec<Value> = serde_json::from_slice(&out).expect("valid JSON");
    let alone: Vec<Value> = list.iter().map(encode).collect();
    assert_eq!(together, alone);
    assert_eq!(alone[2]["tags"]["user_agent.original"], "");
    assert_eq!(alone[2]["remoteEndpoint"]["ipv4"], "10.1.2.3");
    assert_eq!(alone[5]["tags"]["server.port"], "9");
    assert_eq!(alone[7]["tags"]["server.address"], "users.local");
    assert_eq!(alone[7]["tags"]["user_agent.original"], "say \"hi\"");
    assert!(alone[3]["tags"].get("server.address").is_none());
}
