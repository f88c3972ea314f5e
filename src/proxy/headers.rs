//! Header rewriting between downstream and upstream.
//!
//! Hop-by-hop headers apply to one connection only and must not be
//! forwarded: which those are is [`semantics`]'s to say (the fixed list,
//! and every field the `Connection` header names, RFC 9110 §7.6.1).
//! `TE: trailers` is the exception on requests: gRPC requires it end to
//! end over HTTP/2. When `Transfer-Encoding` was present, `Content-Length`
//! goes too (RFC 9112 §6.3 item 3: the proxy frames the body anew).
//! `X-Forwarded-For`, `-Proto` and `-Host` are appended so the app sees
//! who called.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

use crate::http1::semantics::{self, HOP_BY_HOP};
use crate::propagation::{self, Outgoing};

/// The bit of [`present`] for a [`HOP_BY_HOP`] name: its position.
const fn hop_bit(name: &str) -> u16 {
    let mut i = 0;
    while i < HOP_BY_HOP.len() {
        if same(HOP_BY_HOP[i].as_bytes(), name.as_bytes()) {
            return 1 << i;
        }
        i += 1;
    }
    panic!("not a hop-by-hop field")
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const CONNECTION: u16 = hop_bit("connection");
const TRANSFER_ENCODING: u16 = hop_bit("transfer-encoding");
const UPGRADE: u16 = hop_bit("upgrade");
const TE: u16 = hop_bit("te");
/// Every [`HOP_BY_HOP`] bit.
const HOP_BITS: u16 = (1 << HOP_BY_HOP.len()) - 1;
// The `X-Forwarded-*` and `Via` bits follow the hop-by-hop ones.
const FORWARDED_FOR: u16 = 1 << 9;
const FORWARDED_PROTO: u16 = 1 << 10;
const FORWARDED_HOST: u16 = 1 << 11;
/// `Via` (RFC 9110 §7.6.3): loop detection reads it, forwarding appends to it.
pub const VIA: u16 = 1 << 12;

static VIA_NAME: HeaderName = header::VIA;
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Which of [`HOP_BY_HOP`], `X-Forwarded-*` and `Via` `headers` holds, one bit
/// each, from one pass over the names (cheaper than a hashed lookup per
/// name; most requests carry none, most responses only `Connection`).
pub fn present(headers: &HeaderMap) -> u16 {
    headers
        .keys()
        .fold(0, |mask, name| mask | bit_of(name.as_str()))
}

/// The [`present`] bit of the (lowercase) field name `name`; 0 for none.
fn bit_of(name: &str) -> u16 {
    match semantics::hop_by_hop_index(name.as_bytes()) {
        Some(i) => 1 << i,
        None => match name {
            "x-forwarded-for" => FORWARDED_FOR,
            "x-forwarded-proto" => FORWARDED_PROTO,
            "x-forwarded-host" => FORWARDED_HOST,
            "via" => VIA,
            _ => 0,
        },
    }
}

/// What the proxy looks for in a request's fields, found in one pass
/// over their names: the rewriting, trace-context extraction and
/// injection, and the span's facts each needed a pass or a hashed lookup
/// of their own (about 500 instructions per request, callgrind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestFields {
    /// [`present`]'s bits.
    pub proxy: u16,
    /// The trace-context fields, [`propagation::context_bit`]'s bits.
    pub context: u8,
    /// `Content-Length`.
    pub content_length: bool,
    /// `Content-Type` (a gRPC call has one).
    pub content_type: bool,
}

impl RequestFields {
    /// The fields of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        headers.keys().fold(Self::default(), |mut found, name| {
            let name = name.as_str();
            match bit_of(name) {
                0 if name == "content-length" => found.content_length = true,
                0 if name == "content-type" => found.content_type = true,
                0 => found.context |= propagation::context_bit(name),
                bit => found.proxy |= bit,
            }
            found
        })
    }

    /// Whether `Upgrade` is among them.
    pub fn upgrade(self) -> bool {
        self.proxy & UPGRADE != 0
    }
}

/// Removes hop-by-hop headers; `present` is what [`present`] found in
/// `headers`. With `keep_upgrade`, `Connection: upgrade` and `Upgrade`
/// survive (a WebSocket handshake being tunnelled).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, present: u16, keep_upgrade: bool) {
    if present & CONNECTION != 0 {
        remove_named_by_connection(headers);
    }
    if present & TRANSFER_ENCODING != 0 {
        headers.remove(header::CONTENT_LENGTH);
    }
    // Upgrade and TE have rules of their own, below.
    let mut plain = present & HOP_BITS & !(UPGRADE | TE);
    while plain != 0 {
        let i = plain.trailing_zeros() as usize;
        plain &= plain - 1;
        headers.remove(HOP_BY_HOP[i]);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if present & UPGRADE != 0 {
        headers.remove(header::UPGRADE);
    }
    if present & TE != 0
        && headers
            .get(header::TE)
            .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// Removes the headers the `Connection` header names.
fn remove_named_by_connection(headers: &mut HeaderMap) {
    let mut named = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for name in semantics::named_fields(value.as_bytes()) {
            if let Ok(name) = HeaderName::from_bytes(name) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// Removes hop-by-hop headers from a response (no `TE` exception).
pub fn remove_hop_by_hop_response(headers: &mut HeaderMap, keep_upgrade: bool) {
    remove_hop_by_hop(headers, present(headers), keep_upgrade);
    headers.remove(header::TE);
}

/// Adds `value` to the list in `name`, folding existing field lines into
/// one (RFC 9110 §5.3); one hashed lookup.
fn append(headers: &mut HeaderMap, name: &HeaderName, value: HeaderValue) {
    match headers.entry(name) {
        Entry::Vacant(entry) => {
            entry.insert(value);
        }
        Entry::Occupied(mut entry) => {
            let mut joined = Vec::with_capacity(64);
            for existing in entry.iter() {
                joined.extend_from_slice(existing.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value.as_bytes());
            if let Ok(combined) = HeaderValue::from_bytes(&joined) {
                entry.insert(combined);
            }
        }
    }
}

/// Appends the downstream's address, scheme and host; `present` is what
/// [`present`] found. A field the request does not carry yet goes to `out`
/// as a new one; one it carries gets the value added to its list.
pub fn add_forwarded(
    out: &mut Outgoing<'_>,
    present: u16,
    peer: &HeaderValue,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    let mut add = |bit, name, value| add_to_list(out, present, bit, name, value);
    add(FORWARDED_FOR, &X_FORWARDED_FOR, peer.clone());
    add(
        FORWARDED_PROTO,
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(scheme),
    );
    if let Some(host) = host {
        add(FORWARDED_HOST, &X_FORWARDED_HOST, host.clone());
    }
}

/// Appends this listener's `Via` entry (RFC 9110 §7.6.3) to the list the
/// request carries, or starts it.
pub fn add_via(out: &mut Outgoing<'_>, present: u16, entry: HeaderValue) {
    add_to_list(out, present, VIA, &VIA_NAME, entry);
}

/// `value` as a new field (`present` has no `bit`), or added to the list
/// the request already carries.
fn add_to_list(
    out: &mut Outgoing<'_>,
    present: u16,
    bit: u16,
    name: &'static HeaderName,
    value: HeaderValue,
) {
    if present & bit == 0 {
        out.set(name, value);
    } else {
        append(out.headers, name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::ip_value;

    fn strip(h: &mut HeaderMap, keep_upgrade: bool) {
        let found = present(h);
        remove_hop_by_hop(h, found, keep_upgrade);
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("trailer", "x-checksum"),
            ("upgrade", "h2c"),
            ("x-app", "kept"),
            ("traceparent", "kept"),
        ]);
        strip(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        // `Trailer` is end to end (RFC 9110 §6.6.2).
        assert_eq!(names, vec!["x-app", "trailer", "traceparent"]);
    }

    #[test]
    fn every_connection_line_is_honoured() {
        let mut h = map(&[
            ("connection", "close"),
            ("connection", "X-Second-Hop , keep-alive"),
            ("x-second-hop", "1"),
            ("x-app", "kept"),
        ]);
        remove_hop_by_hop_response(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-app"]);
        // Nothing hop-by-hop: nothing changes.
        let mut h = map(&[("x-app", "kept"), ("te", "trailers")]);
        strip(&mut h, false);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut h = map(&[("te", "trailers")]);
        strip(&mut h, false);
        assert_eq!(h.get("te").unwrap(), "trailers");
        remove_hop_by_hop_response(&mut h, false);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn upgrade_is_kept_when_tunnelling() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        let present = present(&h);
        add_forwarded(
            &mut Outgoing::new(&mut h, None),
            present,
            &ip_value("10.0.0.1".parse().unwrap()),
            "http",
            Some(&HeaderValue::from_static("shop.example")),
        );
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "203.0.113.7, 198.51.100.2, 10.0.0.1"
        );
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "shop.example");
        let mut h = HeaderMap::new();
        add_forwarded(
            &mut Outgoing::new(&mut h, None),
            0,
            &ip_value("2001:db8::1".parse().unwrap()),
            "https",
            None,
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "2001:db8::1");
        assert!(h.get("x-forwarded-host").is_none());
    }

    #[test]
    fn new_forwarded_fields_can_go_to_a_list_and_existing_ones_grow() {
        let mut h = map(&[("x-forwarded-for", "203.0.113.7"), ("x-app", "1")]);
        let mut added = Vec::new();
        let present = present(&h);
        add_forwarded(
            &mut Outgoing::new(&mut h, Some(&mut added)),
            present,
            &ip_value("10.0.0.1".parse().unwrap()),
            "http",
            Some(&HeaderValue::from_static("shop.example")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 10.0.0.1");
        assert_eq!(h.len(), 2, "the map gained no field");
        let added: Vec<(&str, &str)> = added
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            added,
            [
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "shop.example")
            ]
        );
    }

    #[test]
    fn one_pass_finds_what_each_lookup_would() {
        // Every name with a rule, in mixed order, alone and together with
        // names that have none.
        let named: Vec<&str> = HOP_BY_HOP
            .into_iter()
            .chain(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"])
            .chain(["via", "content-length", "content-type"])
            .chain(propagation::CONTEXT_HEADERS.map(HeaderName::as_str))
            .collect();
        let others = ["host", "accept", "x-via", "content-types", "x-b3"];
        let mut maps: Vec<HeaderMap> = named
            .iter()
            .chain(&others)
            .map(|name| map(&[("accept", "*/*"), (name, "1")]))
            .collect();
        let all: Vec<(&str, &str)> = named.iter().map(|name| (*name, "1")).collect();
        maps.push(map(&all));
        maps.push(HeaderMap::new());
        for h in &maps {
            let fields = RequestFields::of(h);
            assert_eq!(fields.proxy, present(h), "{h:?}");
            assert_eq!(fields.upgrade(), h.contains_key("upgrade"), "{h:?}");
            assert_eq!(
                fields.content_length,
                h.contains_key("content-length"),
                "{h:?}"
            );
            assert_eq!(fields.content_type, h.contains_key("content-type"), "{h:?}");
            let context = propagation::CONTEXT_HEADERS
                .iter()
                .enumerate()
                .filter(|(_, name)| h.contains_key(**name))
                .fold(0, |mask, (i, _)| mask | 1 << i);
            assert_eq!(fields.context, context, "{h:?}");
        }
        assert_eq!(
            RequestFields::of(maps.last().unwrap()),
            RequestFields::default()
        );
    }
}
