//! Zipkin v2 JSON encoding of finished spans (Zipkin v2 API, `ListOfSpans`).
//!
//! Owns the rendering of a typed [`Span`] into what a Zipkin collector sees:
//! the lowercased name, the endpoints, the tags (their names, values and
//! rules are [`super::tags`]'s, shared with the OTLP encoder) and the
//! `error` tag. This runs in the batcher, off the request path.
//! Absent fields are omitted rather than written empty or null, as the
//! Zipkin API asks; `shared` is never written because every span here owns
//! its span id (SERVER spans get a fresh id, CLIENT spans must never be shared).

use std::sync::Arc;

use super::json::{
    write_bytes_lossy, write_escaped_lowercase, write_plain_str, write_str, write_str_lowercase,
    write_u64, write_u64_str,
};
use super::tags::{self, Failure, Key, Name, TagSink, write_host, write_user_agent};
use crate::span::{Endpoint, Kind, Span, canonical_ip, ip_text};
use std::net::IpAddr;

/// Static facts about every exported span: the process's resource.
#[derive(Clone, Debug, Default)]
pub struct EncodeOptions {
    /// Pod metadata and `service.tags` (`ServiceConfig.resource_tags`):
    /// appended to every span's tags in Zipkin, resource attributes in OTLP.
    pub resource_tags: Vec<(String, String)>,
    /// OTLP's `service.instance.id` ([`crate::span::instance_id`]), when known.
    pub service_instance_id: Option<String>,
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
/// rendered: the resource tags, the local endpoint of the last span
/// (every span of a process names the same service), and the last span's
/// peer address, host and user agent (a connection's requests, and most
/// clients', share them).
///
/// Why: encoding is most of what tracing adds to a request (callgrind,
/// `bench/instructions.sh`: about 2,600 of tracehop-on's 26,900
/// instructions per request), and these three were a quarter of it.
pub struct SpanEncoder {
    /// `,"key":"value"` for every resource tag.
    resource: Vec<u8>,
    /// The service of the last span and its `"localEndpoint"` member.
    local: Option<(Arc<str>, Vec<u8>)>,
    /// The last peer address and its text (the text's buffer is reused
    /// when the address changes).
    peer: (Option<IpAddr>, String),
    /// The last host's and user agent's tags.
    repeats: Repeats,
    /// Scratch space for derived route templates.
    route: String,
}

/// The last `Host` and `User-Agent` values and the tags made of them.
#[derive(Default)]
struct Repeats {
    host: Repeat,
    agent: Repeat,
}

/// A value and what was rendered of it.
#[derive(Default)]
struct Repeat {
    value: Option<Vec<u8>>,
    rendered: Vec<u8>,
}

impl Repeat {
    /// Values kept at most this long: longer ones are rendered each time.
    const MAX: usize = 256;

    /// What `render` makes of `value`: the last rendering when `value` is
    /// the last value.
    fn rendered(&mut self, value: &[u8], render: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        if self.value.as_deref() != Some(value) {
            self.rendered.clear();
            render(&mut self.rendered);
            let kept = self.value.get_or_insert_with(Vec::new);
            kept.clear();
            kept.extend_from_slice(value);
        }
        &self.rendered
    }
}

impl SpanEncoder {
    pub fn new(options: &EncodeOptions) -> Self {
        let mut resource = Vec::new();
        let mut tags = JsonTags::new(&mut resource);
        for (key, value) in &options.resource_tags {
            tags.any(key, value);
        }
        Self {
            resource,
            local: None,
            peer: (None, String::new()),
            repeats: Repeats::default(),
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
        let route = tags::route_of(span, &mut self.route);
        out.extend_from_slice(b",\"name\":");
        write_name(&tags::name(span, route), out);
        out.extend_from_slice(b",\"timestamp\":");
        write_u64(out, span.timestamp_us);
        out.extend_from_slice(b",\"duration\":");
        write_u64(out, span.duration_us.max(1));
        if span.debug {
            out.extend_from_slice(b",\"debug\":true");
        }
        out.extend_from_slice(local_endpoint(&mut self.local, &span.local_service));
        // The peer's address, written twice (endpoint and `client.address`).
        let ip = span
            .remote
            .addr
            .map(|addr| peer_text(&mut self.peer, addr.ip()));
        write_remote_endpoint(&span.remote, ip, out);
        // Every member is written with a leading comma; the first one's
        // becomes the object's `{` (the method is always there).
        out.extend_from_slice(b",\"tags\":");
        let open = out.len();
        let mut sink = JsonTags {
            out: &mut *out,
            repeats: Some(&mut self.repeats),
        };
        tags::write_tags(span, route, ip, &mut sink);
        write_error(tags::failure(span), &mut sink);
        out.extend_from_slice(&self.resource);
        match out.get_mut(open) {
            Some(comma) => *comma = b'{',
            None => out.push(b'{'),
        }
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

/// The text of `ip`, from `last` when it holds the same address.
fn peer_text(last: &mut (Option<IpAddr>, String), ip: IpAddr) -> &str {
    let (kept, text) = last;
    if *kept != Some(ip) {
        let mut buf = [0; 45];
        text.clear();
        text.push_str(&String::from_utf8_lossy(ip_text(ip, &mut buf)));
        *kept = Some(ip);
    }
    text
}

/// The name in lower case, as Zipkin stores names; a gRPC name as written
/// in its path (protobuf identifiers and dots only: nothing to escape).
fn write_name(name: &Name<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    match name {
        Name::Rpc { service, method } => {
            out.extend_from_slice(service.as_bytes());
            out.push(b'/');
            out.extend_from_slice(method.as_bytes());
        }
        Name::Db {
            operation,
            collection,
            system,
        } => write_escaped_lowercase(out, &Name::db_text(*operation, *collection, system)),
        Name::Http { method, target } => {
            match lowercase_method(method) {
                Some(method) => out.extend_from_slice(method.as_bytes()),
                None => write_escaped_lowercase(out, method.as_str()),
            }
            if let Some(target) = target {
                out.push(b' ');
                write_escaped_lowercase(out, target);
            }
        }
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
fn write_remote_endpoint(remote: &Endpoint, text: Option<&str>, out: &mut Vec<u8>) {
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
        out.extend_from_slice(text.unwrap_or_default().as_bytes());
        out.push(b'"');
        if addr.port() != 0 {
            out.extend_from_slice(b",\"port\":");
            write_u64(out, u64::from(addr.port()));
        }
    }
    out.push(b'}');
}

/// Zipkin marks a span failed by the presence of the `error` tag; its
/// value is the message, or the status when there is no message.
fn write_error(failure: Option<Failure<'_>>, tags: &mut JsonTags<'_>) {
    const ERROR: Key = Key {
        name: "error",
        json: ",\"error\":",
    };
    match failure {
        None => {}
        Some(Failure::Message(message)) => tags.text(ERROR, message),
        Some(Failure::Status(status)) => tags.number(ERROR, u64::from(status)),
        Some(Failure::Sqlstate(code)) => tags.text(ERROR, &format!("SQLSTATE {code}")),
        Some(Failure::Grpc(code)) => {
            tags.out.extend_from_slice(ERROR.json.as_bytes());
            tags.out.extend_from_slice(b"\"grpc-status ");
            write_u64(tags.out, u64::from(code));
            tags.out.push(b'"');
        }
    }
}

/// Writes tags as `,"key":"value"` members of the `tags` object.
struct JsonTags<'a> {
    out: &'a mut Vec<u8>,
    /// Where the last host's and user agent's tags are kept, if anywhere.
    repeats: Option<&'a mut Repeats>,
}

impl<'a> JsonTags<'a> {
    /// A sink that keeps nothing.
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, repeats: None }
    }
}

// Inlined so that every key is a constant-length copy.
impl TagSink for JsonTags<'_> {
    #[inline(always)]
    fn text(&mut self, key: Key, value: &str) {
        self.out.extend_from_slice(key.json.as_bytes());
        write_str(self.out, value);
    }

    #[inline(always)]
    fn plain(&mut self, key: Key, value: &str) {
        self.out.extend_from_slice(key.json.as_bytes());
        write_plain_str(self.out, value);
    }

    #[inline(always)]
    fn bytes(&mut self, key: Key, value: &[u8]) {
        self.out.extend_from_slice(key.json.as_bytes());
        write_bytes_lossy(self.out, value);
    }

    #[inline(always)]
    fn number(&mut self, key: Key, value: u64) {
        self.out.extend_from_slice(key.json.as_bytes());
        write_u64_str(self.out, value);
    }

    fn any(&mut self, key: &str, value: &str) {
        self.out.push(b',');
        write_str(self.out, key);
        self.out.push(b':');
        write_str(self.out, value);
    }

    fn host(&mut self, host: &[u8]) {
        self.repeated(
            |kept| &mut kept.host,
            host,
            |host, tags| write_host(host, tags),
        );
    }

    fn user_agent(&mut self, agent: &[u8]) {
        self.repeated(
            |kept| &mut kept.agent,
            agent,
            |agent, tags| write_user_agent(agent, tags),
        );
    }
}

impl JsonTags<'_> {
    /// Writes what `write` makes of `value`, kept in `which` of the
    /// repeats when there are any and `value` is short.
    fn repeated(
        &mut self,
        which: fn(&mut Repeats) -> &mut Repeat,
        value: &[u8],
        write: fn(&[u8], &mut JsonTags<'_>),
    ) {
        match self.repeats.as_deref_mut() {
            Some(repeats) if value.len() <= Repeat::MAX => {
                let tags = which(repeats).rendered(value, |rendered| {
                    write(value, &mut JsonTags::new(rendered));
                });
                self.out.extend_from_slice(tags);
            }
            _ => write(value, self),
        }
    }
}

#[cfg(test)]
#[path = "zipkin_json_tests.rs"]
mod tests;
