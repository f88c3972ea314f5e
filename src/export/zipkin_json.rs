//! Zipkin v2 JSON encoding of finished spans (Zipkin v2 API, `ListOfSpans`).
//!
//! Owns the rendering of a typed [`Span`] into what the collector sees: the
//! low-cardinality name, the endpoints, and OpenTelemetry HTTP and RPC
//! semantic-convention tags (the gRPC rules themselves are
//! [`crate::span::grpc`]'s). This runs in the batcher, off the request path.
//! Absent fields are omitted rather than written empty or null, as the
//! Zipkin API asks; `shared` is never written because every span here owns
//! its span id (SERVER spans get a fresh id, CLIENT spans must never be shared).

use std::sync::Arc;

use super::json::{
    write_bytes_lossy, write_escaped_lowercase, write_plain_str, write_str, write_str_lowercase,
    write_u64, write_u64_str,
};
use super::route::template_path;
use crate::span::{Endpoint, Kind, Span, canonical_ip, grpc, ip_text};

/// `,"name":`, the start of a tag member, as one static string.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// Static facts added to every exported span (pod metadata from
/// `ServiceConfig.resource_tags`).
#[derive(Clone, Debug, Default)]
pub struct EncodeOptions {
    /// Tags appended to every span, after its own tags.
    pub resource_tags: Vec<(String, String)>,
}

/// Appends the Zipkin v2 JSON array of `spans` to `out`. The batcher
/// encodes through [`SpanEncoder`] span by span; this is the same encoding
/// of a whole list, for benchmarks and tests.
pub fn encode_spans(spans: &[Span], options: &EncodeOptions, out: &mut Vec<u8>) {
    let mut encoder = SpanEncoder::new(options);
    out.push(b'[');
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encoder.encode(span, out);
    }
    out.push(b']');
}

/// Encodes spans one at a time, keeping what repeats from span to span
/// rendered: the resource tags, and the local endpoint of the last span
/// (every span of a process names the same service).
pub struct SpanEncoder {
    /// `,"key":"value"` for every resource tag.
    resource: Vec<u8>,
    /// The service of the last span and its `"localEndpoint"` member.
    local: Option<(Arc<str>, Vec<u8>)>,
    /// Scratch space for derived route templates.
    route: String,
}

impl SpanEncoder {
    pub fn new(options: &EncodeOptions) -> Self {
        let mut resource = Vec::new();
        let mut tags = TagWriter { out: &mut resource };
        for (key, value) in &options.resource_tags {
            tags.any(key, value);
        }
        Self {
            resource,
            local: None,
            route: String::new(),
        }
    }

    /// Appends the JSON object of `span` to `out`.
    pub fn encode(&mut self, span: &Span, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"traceId\":\"");
        span.trace_id.write_short_hex(out);
        out.push(b'"');
        if let Some(parent) = span.parent_id {
            out.extend_from_slice(b",\"parentId\":\"");
            out.extend_from_slice(&parent.to_hex());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"id\":\"");
        out.extend_from_slice(&span.id.to_hex());
        out.extend_from_slice(match span.kind {
            Kind::Server => b"\",\"kind\":\"SERVER\"",
            Kind::Client => b"\",\"kind\":\"CLIENT\"",
        });
        let route = route_of(span, &mut self.route);
        out.extend_from_slice(b",\"name\":");
        write_name(span, route, out);
        out.extend_from_slice(b",\"timestamp\":");
        write_u64(out, span.timestamp_us);
        out.extend_from_slice(b",\"duration\":");
        write_u64(out, span.duration_us.max(1));
        if span.debug {
            out.extend_from_slice(b",\"debug\":true");
        }
        out.extend_from_slice(local_endpoint(&mut self.local, &span.local_service));
        // The peer's address, written twice (endpoint and `client.address`).
        let mut ip_buf = [0; 45];
        let ip = span.remote.addr.map(|addr| ip_text(addr.ip(), &mut ip_buf));
        write_remote_endpoint(&span.remote, ip, out);
        out.extend_from_slice(b",\"tags\":{");
        write_tags(span, route, ip, out);
        out.extend_from_slice(&self.resource);
        out.extend_from_slice(b"}}");
    }
}

/// `,"localEndpoint":{"serviceName":…}` for `service`, from `last` when it
/// holds the same service, else rendered into it.
fn local_endpoint<'a>(last: &'a mut Option<(Arc<str>, Vec<u8>)>, service: &Arc<str>) -> &'a [u8] {
    if !matches!(last, Some((name, _)) if name == service) {
        let mut member = b",\"localEndpoint\":{\"serviceName\":".to_vec();
        write_str_lowercase(&mut member, service);
        member.push(b'}');
        *last = Some((service.clone(), member));
    }
    last.as_ref().map_or(&[], |(_, member)| member)
}

/// The route of the span: the configured template that matched, else the
/// path templated by [`template_path`]. CONNECT has no route (DESIGN §4).
fn route_of<'a>(span: &'a Span, scratch: &'a mut String) -> Option<&'a str> {
    let facts = &span.http;
    if facts.method == http::Method::CONNECT {
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

/// `"{method} {route}"`, or `connect {host}` for tunnels, lowercased as
/// Zipkin does with span names; a gRPC call is `{service}/{method}`
/// (OpenTelemetry RPC conventions), as written in its path.
fn write_name(span: &Span, route: Option<&str>, out: &mut Vec<u8>) {
    out.push(b'"');
    if let Some((service, method)) = grpc_method(span) {
        // Protobuf identifiers and dots only: nothing to escape.
        out.extend_from_slice(service.as_bytes());
        out.push(b'/');
        out.extend_from_slice(method.as_bytes());
        out.push(b'"');
        return;
    }
    match lowercase_method(&span.http.method) {
        Some(method) => out.extend_from_slice(method.as_bytes()),
        None => write_escaped_lowercase(out, span.http.method.as_str()),
    }
    let target = match (route, &span.http.host) {
        (Some(route), _) => Some(route.into()),
        (None, Some(host)) => Some(String::from_utf8_lossy(host.as_bytes())),
        (None, None) => None,
    };
    if let Some(target) = target {
        out.push(b' ');
        write_escaped_lowercase(out, &target);
    }
    out.push(b'"');
}

/// The standard methods (RFC 9110 §9) in lower case.
fn lowercase_method(method: &http::Method) -> Option<&'static str> {
    use http::Method;
    Some(match *method {
        Method::GET => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::DELETE => "delete",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        Method::PATCH => "patch",
        Method::CONNECT => "connect",
        Method::TRACE => "trace",
        _ => return None,
    })
}

/// Writes `remoteEndpoint` with only the fields that are known; nothing
/// when none is.
/// `text` is the address as text, when there is one.
fn write_remote_endpoint(remote: &Endpoint, text: Option<&[u8]>, out: &mut Vec<u8>) {
    if remote.service_name.is_none() && remote.addr.is_none() {
        return;
    }
    out.extend_from_slice(b",\"remoteEndpoint\":{");
    let mut first = true;
    if let Some(name) = &remote.service_name {
        out.extend_from_slice(b"\"serviceName\":");
        write_str_lowercase(out, name);
        first = false;
    }
    if let Some(addr) = remote.addr {
        if !first {
            out.push(b',');
        }
        // An IPv4 client on a dual-stack socket shows up IPv4-mapped; Zipkin
        // wants it in `ipv4`.
        let ip = canonical_ip(addr.ip());
        out.extend_from_slice(if ip.is_ipv4() {
            b"\"ipv4\":\""
        } else {
            b"\"ipv6\":\""
        });
        out.extend_from_slice(text.unwrap_or_default());
        out.push(b'"');
        if addr.port() != 0 {
            out.extend_from_slice(b",\"port\":");
            write_u64(out, u64::from(addr.port()));
        }
    }
    out.push(b'}');
}

/// Writes the members of the `tags` object, in a fixed order.
fn write_tags(span: &Span, route: Option<&str>, ip: Option<&[u8]>, out: &mut Vec<u8>) {
    let facts = &span.http;
    // The method is always there, so it opens the object; every other
    // member starts with its comma.
    out.extend_from_slice(b"\"http.request.method\":");
    // Methods are tokens (RFC 9110 §9.1), which need no escape.
    write_plain_str(out, facts.method.as_str());
    let mut tags = TagWriter { out };
    if let Some(target) = &facts.target {
        tags.text(key!("url.path"), target.path());
    }
    if !facts.scheme.is_empty() {
        tags.plain(key!("url.scheme"), facts.scheme);
    }
    if let Some(host) = &facts.host {
        let (address, port) = split_host(host.as_bytes());
        if !address.is_empty() {
            tags.bytes(key!("server.address"), address);
        }
        if let Some(port) = port {
            tags.number(key!("server.port"), u64::from(port));
        }
    }
    if let Some(route) = route {
        tags.text(key!("http.route"), route);
    }
    if let Some(status) = facts.status {
        tags.number(key!("http.response.status_code"), u64::from(status));
    }
    if let Some(version) = protocol_version(facts.version) {
        tags.plain(key!("network.protocol.version"), version);
    }
    if let Some(agent) = &facts.user_agent {
        tags.bytes(key!("user_agent.original"), agent.as_bytes());
    }
    write_peer_and_outcome(span, ip, &mut tags);
    for tag in &span.tags {
        tags.any(&tag.key, &tag.value);
    }
}

/// Client address, body sizes, the RPC tags and the `error` tag.
fn write_peer_and_outcome(span: &Span, ip: Option<&[u8]>, tags: &mut TagWriter<'_>) {
    let facts = &span.http;
    if let (Kind::Server, Some(ip)) = (span.kind, ip) {
        tags.key(key!("client.address"));
        tags.out.push(b'"');
        tags.out.extend_from_slice(ip);
        tags.out.push(b'"');
    }
    if facts.request_body_bytes > 0 {
        tags.number(key!("http.request.body.size"), facts.request_body_bytes);
    }
    if facts.response_body_bytes > 0 {
        tags.number(key!("http.response.body.size"), facts.response_body_bytes);
    }
    if let Some(call) = facts.grpc {
        write_rpc(span, call.status, tags);
    }
    // Zipkin marks a span failed by the presence of the `error` tag; its
    // value is the message, or the status when there is no message.
    if let Some(error) = &span.error {
        tags.text(key!("error"), error);
    } else if let Some(status) = facts.status.filter(|s| *s >= 500) {
        tags.number(key!("error"), u64::from(status));
    } else if let Some(code) = facts.grpc_error(span.kind) {
        tags.key(key!("error"));
        tags.out.extend_from_slice(b"\"grpc-status ");
        write_u64(tags.out, u64::from(code));
        tags.out.push(b'"');
    }
}

/// OpenTelemetry RPC tags of a gRPC call: `rpc.system`, `rpc.service` and
/// `rpc.method` when the path names them, `rpc.grpc.status_code` once known.
fn write_rpc(span: &Span, status: Option<u32>, tags: &mut TagWriter<'_>) {
    tags.plain(key!("rpc.system"), "grpc");
    if let Some((service, method)) = grpc_method(span) {
        tags.text(key!("rpc.service"), service);
        tags.text(key!("rpc.method"), method);
    }
    if let Some(code) = status {
        tags.number(key!("rpc.grpc.status_code"), u64::from(code));
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

/// Splits a `Host` value (RFC 9110 §7.2: `uri-host [ ":" port ]`) into the
/// host, without brackets around an IPv6 literal, and the port if present.
fn split_host(host: &[u8]) -> (&[u8], Option<u16>) {
    if let Some(rest) = host.strip_prefix(b"[") {
        return match rest.iter().position(|b| *b == b']') {
            Some(end) => (&rest[..end], parse_port(&rest[end + 1..])),
            None => (host, None),
        };
    }
    match host.iter().rposition(|b| *b == b':') {
        // More than one colon without brackets is not a valid Host; keep it whole.
        Some(colon) if !host[..colon].contains(&b':') => {
            (&host[..colon], parse_port(&host[colon..]))
        }
        _ => (host, None),
    }
}

/// Parses `:digits` into a port.
fn parse_port(suffix: &[u8]) -> Option<u16> {
    let digits = suffix.strip_prefix(b":")?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |acc, d| Some(acc * 10 + u32::from(d - b'0')))
        .and_then(|port| u16::try_from(port).ok())
}

/// Writes `,"key":"value"` members after the first.
struct TagWriter<'a> {
    out: &'a mut Vec<u8>,
}

// Inlined so that every key is a constant-length copy.
impl TagWriter<'_> {
    /// Starts a member; `key` comes from [`key!`].
    #[inline(always)]
    fn key(&mut self, key: &'static str) {
        self.out.extend_from_slice(key.as_bytes());
    }

    #[inline(always)]
    fn text(&mut self, key: &'static str, value: &str) {
        self.key(key);
        write_str(self.out, value);
    }

    /// A value known to need no escape.
    #[inline(always)]
    fn plain(&mut self, key: &'static str, value: &'static str) {
        self.key(key);
        write_plain_str(self.out, value);
    }

    /// A tag whose key comes from configuration or a captured header.
    fn any(&mut self, key: &str, value: &str) {
        self.out.push(b',');
        write_str(self.out, key);
        self.out.push(b':');
        write_str(self.out, value);
    }

    /// Header values may hold any byte; they are written lossily.
    #[inline(always)]
    fn bytes(&mut self, key: &'static str, value: &[u8]) {
        self.key(key);
        write_bytes_lossy(self.out, value);
    }

    #[inline(always)]
    fn number(&mut self, key: &'static str, value: u64) {
        self.key(key);
        write_u64_str(self.out, value);
    }
}

#[cfg(test)]
#[path = "zipkin_json_tests.rs"]
mod tests;
