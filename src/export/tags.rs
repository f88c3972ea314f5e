//! What a span says, once for both encoders: its name, its attributes with
//! their OpenTelemetry HTTP, RPC and database semantic-convention names and
//! values, and whether it failed.
//!
//! The Zipkin JSON encoder writes the attributes as tags, the OTLP encoder
//! as attributes; both receive them through [`TagSink`], so a tag's name,
//! its value and the rule that adds it exist only here (the gRPC rules
//! themselves are [`crate::span::grpc`]'s). Each encoder renders the name
//! ([`name`]) and the failure ([`failure`]) its own way: Zipkin lowercases
//! names and marks failure with the `error` tag, OTLP keeps the method's
//! case and sets the span status.
//!
//! The sink is a trait with two implementations taken by generic
//! functions, so the JSON encoder's constant-length key copies stay
//! inlined on its hot loop.

use std::borrow::Cow;

use super::route::template_path;
use crate::http1::semantics;
use crate::span::{DbFacts, Kind, Span, grpc};

/// An attribute name, with its JSON member prefix (`,"name":`) spelled out
/// at compile time for the Zipkin encoder.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub json: &'static str,
}

/// The [`Key`] of an attribute name.
macro_rules! key {
    ($name:literal) => {
        Key {
            name: $name,
            json: concat!(",\"", $name, "\":"),
        }
    };
}

/// Receives a span's attributes in a fixed order.
pub trait TagSink {
    /// Text that may need escaping.
    fn text(&mut self, key: Key, value: &str);
    /// Text known to need no JSON escape (tokens, addresses, fixed words).
    fn plain(&mut self, key: Key, value: &str);
    /// Header bytes, which may hold any byte: written lossily.
    fn bytes(&mut self, key: Key, value: &[u8]);
    /// A whole number (a string tag in Zipkin, an int attribute in OTLP).
    fn number(&mut self, key: Key, value: u64);
    /// An attribute whose name comes from configuration or a captured header.
    fn any(&mut self, key: &str, value: &str);
    /// `server.address` and `server.port` of a `Host` value ([`write_host`]).
    /// A sink may keep what it made of the last value: spans in a row
    /// mostly share their host.
    fn host(&mut self, host: &[u8]) {
        write_host(host, self);
    }
    /// `user_agent.original`; like [`TagSink::host`], mostly repeated.
    fn user_agent(&mut self, agent: &[u8]) {
        write_user_agent(agent, self);
    }
}

/// Why a span failed: the reason Zipkin's `error` tag and OTLP's status
/// report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    /// No usable response: the upstream failed (connect, timeout, reset).
    Message(&'a str),
    /// A 5xx response.
    Status(u16),
    /// A gRPC status that fails a span of this kind ([`grpc::GrpcCall::error_status`]).
    Grpc(u32),
    /// The SQLSTATE of a database query's `ErrorResponse`.
    Sqlstate(&'a str),
}

/// Whether the span failed, and why; the first that applies: a
/// database's SQLSTATE, an error message, a 5xx status, a failing gRPC
/// status.
pub fn failure(span: &Span) -> Option<Failure<'_>> {
    if let Some(code) = span.db.as_ref().and_then(|db| db.status_text()) {
        return Some(Failure::Sqlstate(code));
    }
    if let Some(error) = &span.error {
        return Some(Failure::Message(error));
    }
    if let Some(status) = span.http.status.filter(|s| *s >= 500) {
        return Some(Failure::Status(status));
    }
    span.http.grpc_error(span.kind).map(Failure::Grpc)
}

/// The parts of a span's name; each encoder writes them its own way.
#[derive(Debug, PartialEq, Eq)]
pub enum Name<'a> {
    /// `{service}/{method}` of a gRPC call (OpenTelemetry RPC conventions).
    Rpc { service: &'a str, method: &'a str },
    /// `{method} {route}` (DESIGN §4), or `{method} {host}` for a tunnel.
    Http {
        method: &'a http::Method,
        target: Option<Cow<'a, str>>,
    },
    /// `{db.operation.name} {db.collection.name}`, or what of it is known,
    /// else `db.system.name` (OpenTelemetry database spans, "Name").
    Db {
        operation: Option<&'a str>,
        collection: Option<&'a str>,
        system: &'a str,
    },
}

impl Name<'_> {
    /// The name of a database span as one string.
    pub fn db_text(operation: Option<&str>, collection: Option<&str>, system: &str) -> String {
        match (operation, collection) {
            (Some(op), Some(table)) => format!("{op} {table}"),
            (Some(op), None) => op.to_owned(),
            (None, _) => system.to_owned(),
        }
    }
}

/// The name of `span` whose route is `route` (see [`route_of`]).
pub fn name<'a>(span: &'a Span, route: Option<&'a str>) -> Name<'a> {
    if let Some(db) = &span.db {
        return Name::Db {
            operation: db.operation.as_deref(),
            collection: db.collection.as_deref(),
            system: db.system,
        };
    }
    if let Some((service, method)) = grpc_method(span) {
        return Name::Rpc { service, method };
    }
    let target = match (route, &span.http.host) {
        (Some(route), _) => Some(Cow::Borrowed(route)),
        (None, Some(host)) => Some(String::from_utf8_lossy(host.as_bytes())),
        (None, None) => None,
    };
    Name::Http {
        method: &span.http.method,
        target,
    }
}

/// The route of the span: the configured template that matched, else the
/// path templated by [`template_path`]. CONNECT has no route (DESIGN §4),
/// nor has a database query.
pub fn route_of<'a>(span: &'a Span, scratch: &'a mut String) -> Option<&'a str> {
    let facts = &span.http;
    if facts.method == http::Method::CONNECT || span.db.is_some() {
        return None;
    }
    if let Some(route) = &facts.route {
        return Some(route);
    }
    Some(template_path(
        facts.target.as_ref().map_or("", |t| t.path()),
        scratch,
    ))
}

/// The service and method of a gRPC call whose path names them.
fn grpc_method(span: &Span) -> Option<(&str, &str)> {
    span.http.grpc?;
    grpc::service_and_method(span.http.target.as_ref()?.path())
}

/// Hands every attribute of `span` to `sink`, in a fixed order, starting
/// with `http.request.method`, or `db.system.name` for a database span
/// (always present). `route` is [`route_of`]'s;
/// `ip` is the text of the peer's address, when there is one. The `error`
/// outcome is not among them: see [`failure`].
pub fn write_tags<S: TagSink>(span: &Span, route: Option<&str>, ip: Option<&str>, sink: &mut S) {
    if let Some(db) = &span.db {
        write_db_tags(db, sink);
    } else {
        write_http_tags(span, route, ip, sink);
    }
    for tag in &span.tags {
        sink.any(&tag.key, &tag.value);
    }
}

/// OpenTelemetry database attributes (semantic conventions for database
/// client spans, and their PostgreSQL page); every text is already
/// sanitised (see [`DbFacts`]).
fn write_db_tags<S: TagSink>(db: &DbFacts, sink: &mut S) {
    sink.plain(key!("db.system.name"), db.system);
    if let Some(namespace) = &db.namespace {
        sink.text(key!("db.namespace"), namespace);
    }
    if let Some(operation) = &db.operation {
        sink.text(key!("db.operation.name"), operation);
    }
    if let Some(collection) = &db.collection {
        sink.text(key!("db.collection.name"), collection);
    }
    sink.text(key!("db.query.text"), &db.query_text);
    if let Some(code) = db.status_text() {
        sink.text(key!("db.response.status_code"), code);
    }
    if let Some(rows) = db.returned_rows {
        sink.number(key!("db.response.returned_rows"), rows);
    }
    sink.text(key!("server.address"), &db.server.0);
    sink.number(key!("server.port"), u64::from(db.server.1));
}

/// The HTTP and RPC attributes.
fn write_http_tags<S: TagSink>(span: &Span, route: Option<&str>, ip: Option<&str>, sink: &mut S) {
    let facts = &span.http;
    // Methods are tokens (RFC 9110 §9.1), which need no escape.
    sink.plain(key!("http.request.method"), facts.method.as_str());
    if let Some(target) = &facts.target {
        sink.text(key!("url.path"), target.path());
    }
    if !facts.scheme.is_empty() {
        sink.plain(key!("url.scheme"), facts.scheme);
    }
    if let Some(host) = &facts.host {
        sink.host(host.as_bytes());
    }
    if let Some(route) = route {
        sink.text(key!("http.route"), route);
    }
    if let Some(status) = facts.status {
        sink.number(key!("http.response.status_code"), u64::from(status));
    }
    if let Some(version) = protocol_version(facts.version) {
        sink.plain(key!("network.protocol.version"), version);
    }
    if let Some(agent) = &facts.user_agent {
        sink.user_agent(agent.as_bytes());
    }
    write_peer_and_rpc(span, ip, sink);
}

/// Client address, body sizes and the RPC attributes.
fn write_peer_and_rpc<S: TagSink>(span: &Span, ip: Option<&str>, sink: &mut S) {
    let facts = &span.http;
    if let (Kind::Server, Some(ip)) = (span.kind, ip) {
        sink.plain(key!("client.address"), ip);
    }
    if facts.request_body_bytes > 0 {
        sink.number(key!("http.request.body.size"), facts.request_body_bytes);
    }
    if facts.response_body_bytes > 0 {
        sink.number(key!("http.response.body.size"), facts.response_body_bytes);
    }
    if let Some(call) = facts.grpc {
        // OpenTelemetry RPC attributes of a gRPC call: `rpc.system`,
        // `rpc.service` and `rpc.method` when the path names them,
        // `rpc.grpc.status_code` once known.
        sink.plain(key!("rpc.system"), "grpc");
        if let Some((service, method)) = grpc_method(span) {
            sink.text(key!("rpc.service"), service);
            sink.text(key!("rpc.method"), method);
        }
        if let Some(code) = call.status {
            sink.number(key!("rpc.grpc.status_code"), u64::from(code));
        }
    }
}

/// `network.protocol.version` values from the OpenTelemetry HTTP conventions.
fn protocol_version(version: http::Version) -> Option<&'static str> {
    match version {
        http::Version::HTTP_09 => Some("0.9"),
        http::Version::HTTP_10 => Some("1.0"),
        http::Version::HTTP_11 => Some("1.1"),
        http::Version::HTTP_2 => Some("2"),
        http::Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// `server.address` and `server.port` of a `Host` value: the address
/// when there is one, the port when it is given.
pub fn write_host<S: TagSink + ?Sized>(host: &[u8], sink: &mut S) {
    let (address, port) = split_host(host);
    if !address.is_empty() {
        sink.bytes(key!("server.address"), address);
    }
    if let Some(port) = port {
        sink.number(key!("server.port"), u64::from(port));
    }
}

/// `user_agent.original`.
pub fn write_user_agent<S: TagSink + ?Sized>(agent: &[u8], sink: &mut S) {
    sink.bytes(key!("user_agent.original"), agent);
}

/// Splits a `Host` value (RFC 9110 §7.2: `uri-host [ ":" port ]`) into the
/// host, without brackets around an IPv6 literal, and the port if present
/// (the split itself is [`semantics::split_host_port`]'s).
fn split_host(host: &[u8]) -> (&[u8], Option<u16>) {
    match semantics::split_host_port(host) {
        // More than one colon without brackets is not a valid Host; keep it whole.
        Some((address, port)) if host.starts_with(b"[") || !address.contains(&b':') => (
            address,
            semantics::parse_decimal(port).and_then(|port| u16::try_from(port).ok()),
        ),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::sample::server_span;
    use crate::span::GrpcCall;

    #[test]
    fn failure_prefers_the_message_then_5xx_then_grpc() {
        let mut span = server_span();
        assert_eq!(failure(&span), None);
        span.http.status = Some(404);
        assert_eq!(failure(&span), None, "4xx is the caller's problem");
        span.http.status = Some(503);
        assert_eq!(failure(&span), Some(Failure::Status(503)));
        span.error = Some("upstream connect failed".into());
        assert_eq!(
            failure(&span),
            Some(Failure::Message("upstream connect failed"))
        );
        let mut grpc = server_span();
        grpc.http.grpc = Some(GrpcCall { status: Some(14) });
        assert_eq!(failure(&grpc), Some(Failure::Grpc(14)));
        grpc.http.grpc = Some(GrpcCall { status: Some(5) });
        assert_eq!(
            failure(&grpc),
            None,
            "NOT_FOUND does not fail a SERVER span"
        );
        grpc.kind = Kind::Client;
        assert_eq!(failure(&grpc), Some(Failure::Grpc(5)));
    }

    #[test]
    fn names_are_rpc_or_method_and_route_or_host() {
        let mut span = server_span();
        let mut scratch = String::new();
        let route = route_of(&span, &mut scratch).map(str::to_owned);
        assert_eq!(route.as_deref(), Some("/users/{id}"));
        assert_eq!(
            name(&span, route.as_deref()),
            Name::Http {
                method: &http::Method::GET,
                target: Some("/users/{id}".into())
            }
        );
        span.http.method = http::Method::CONNECT;
        let mut scratch = String::new();
        assert_eq!(route_of(&span, &mut scratch), None);
        assert_eq!(
            name(&span, None),
            Name::Http {
                method: &http::Method::CONNECT,
                target: Some("users.local:8080".into())
            }
        );
        let mut grpc = server_span();
        grpc.http.grpc = Some(GrpcCall::default());
        grpc.http.target = Some(http::uri::PathAndQuery::from_static(
            "/helloworld.Greeter/SayHello",
        ));
        assert_eq!(
            name(&grpc, None),
            Name::Rpc {
                service: "helloworld.Greeter",
                method: "SayHello"
            }
        );
    }

    #[test]
    fn splits_hosts_and_ports() {
        let cases: [(&[u8], &[u8], Option<u16>); 7] = [
            (b"users.local:8080", b"users.local", Some(8080)),
            (b"users.local", b"users.local", None),
            (b"[::1]:443", b"::1", Some(443)),
            (b"[::1]", b"::1", None),
            (b"::1", b"::1", None),
            (b"host:99999", b"host", None),
            (b"host:", b"host", None),
        ];
        for (host, address, port) in cases {
            assert_eq!(split_host(host), (address, port), "{host:?}");
        }
    }
}
