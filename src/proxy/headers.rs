//! Header rewriting between downstream and upstream.
//!
//! Hop-by-hop headers apply to one connection only and must not be
//! forwarded (RFC 9110 §7.6.1): the fixed list below plus every header the
//! `Connection` header names. `TE: trailers` is the exception on requests:
//! gRPC requires it end to end over HTTP/2. `X-Forwarded-For`, `-Proto`
//! and `-Host` are appended so the app sees who called.

use std::net::IpAddr;

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// Headers that are hop-by-hop whatever `Connection` says
/// (RFC 9110 §7.6.1, plus the non-standard `Keep-Alive` and `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether `name` is one of the headers [`remove_hop_by_hop`] may remove
/// without being told by `Connection` (which is itself one of them).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "te"
    )
}

/// Removes hop-by-hop headers. With `keep_upgrade`, `Connection: upgrade`
/// and `Upgrade` survive (a WebSocket handshake being tunnelled).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most requests carry none: one pass over the names instead of a
    // hashed removal per name.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(connection) = headers.get(header::CONNECTION)
        && let Ok(list) = connection.to_str()
    {
        let named: Vec<HeaderName> = list
            .split(',')
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .filter(|name| !(keep_upgrade && name == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
    if headers
        .get(header::TE)
        .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// Removes hop-by-hop headers from a response (no `TE` exception).
pub fn remove_hop_by_hop_response(headers: &mut HeaderMap, keep_upgrade: bool) {
    remove_hop_by_hop(headers, keep_upgrade);
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

/// Appends the downstream's address, scheme and host.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    let mut buf = [0u8; 45];
    if let Ok(peer) = HeaderValue::from_bytes(crate::span::ip_text(peer, &mut buf)) {
        append(headers, &X_FORWARDED_FOR, peer);
    }
    append(
        headers,
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(scheme),
    );
    if let Some(host) = host {
        append(headers, &X_FORWARDED_HOST, host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        remove_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-app", "traceparent"]);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut h = map(&[("te", "trailers")]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.get("te").unwrap(), "trailers");
        remove_hop_by_hop_response(&mut h, false);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn upgrade_is_kept_when_tunnelling() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        add_forwarded(
            &mut h,
            "10.0.0.1".parse().unwrap(),
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
        add_forwarded(&mut h, "2001:db8::1".parse().unwrap(), "https", None);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "2001:db8::1");
        assert!(h.get("x-forwarded-host").is_none());
    }
}
