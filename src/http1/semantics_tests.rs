//! Table tests for the HTTP/1.1 rules, each row from the RFC text it cites.

use super::*;

fn framing(fields: &[(&str, &str)]) -> Framing {
    let mut framing = Framing::default();
    for (name, value) in fields {
        framing.note(name.as_bytes(), value.as_bytes());
    }
    framing
}

#[test]
fn hop_by_hop_names_are_recognised_whatever_their_case() {
    // RFC 9110 §7.6.1 and the proxy authentication fields.
    for name in [
        "Connection",
        "keep-alive",
        "TE",
        "Upgrade",
        "Transfer-Encoding",
        "Proxy-Connection",
        "proxy-authenticate",
        "Proxy-Authorization",
    ] {
        assert!(is_hop_by_hop(name.as_bytes()), "{name}");
    }
    for name in [
        "content-length",
        "tee",
        "upgrades",
        "date",
        "",
        "host",
        "trailer",
    ] {
        assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(hop_by_hop_index(name.to_uppercase().as_bytes()), Some(i));
    }
}

#[test]
fn list_elements_skip_empty_ones_and_whitespace() {
    // RFC 9110 §5.6.1: "foo,bar", "foo ,bar,", "foo , ,bar,charlie" are valid.
    let table: [(&str, &[&str]); 5] = [
        ("foo,bar", &["foo", "bar"]),
        ("foo ,bar,", &["foo", "bar"]),
        ("foo , ,bar,charlie", &["foo", "bar", "charlie"]),
        ("", &[]),
        (" , , ", &[]),
    ];
    for (value, expected) in table {
        let elements: Vec<&[u8]> = list_elements(value.as_bytes()).collect();
        let expected: Vec<&[u8]> = expected.iter().map(|e| e.as_bytes()).collect();
        assert_eq!(elements, expected, "{value:?}");
    }
    assert!(has_token(b"keep-alive, Close", "close"));
    assert!(!has_token(b"closed, x-close", "close"));
}

#[test]
fn connection_options_name_fields_but_never_host_or_length() {
    let table = [
        ("close", (true, false, false, false)),
        ("Keep-Alive", (false, true, false, false)),
        ("Upgrade", (false, false, true, false)),
        ("keep-alive, X-Hop", (false, true, false, true)),
        // Already hop-by-hop: nothing more to remove.
        ("te, transfer-encoding", (false, false, false, false)),
        // Never connection options (RFC 9110 §7.6.1).
        ("host", (false, false, false, false)),
        ("Content-Length", (false, false, false, false)),
        (",,close,", (true, false, false, false)),
    ];
    for (value, (close, keep_alive, upgrade, names_fields)) in table {
        let options = ConnectionOptions::of([value.as_bytes()]);
        let expected = ConnectionOptions {
            close,
            keep_alive,
            upgrade,
            names_fields,
        };
        assert_eq!(options, expected, "{value:?}");
    }
    assert!(!removable_by_connection(b"Host"));
    assert!(removable_by_connection(b"x-secret"));
}

#[test]
fn persistence_follows_the_version_and_the_options() {
    // RFC 9112 §9.3.
    let close = ConnectionOptions {
        close: true,
        ..ConnectionOptions::default()
    };
    let keep_alive = ConnectionOptions {
        keep_alive: true,
        ..ConnectionOptions::default()
    };
    let none = ConnectionOptions::default();
    assert!(persists(false, none));
    assert!(!persists(false, close));
    assert!(!persists(true, none));
    assert!(persists(true, keep_alive));
    let both = ConnectionOptions {
        close: true,
        keep_alive: true,
        ..ConnectionOptions::default()
    };
    assert!(!persists(true, both), "close wins");
}

#[test]
fn request_framing_follows_rfc_9112_section_6() {
    use BodyLength::{Chunked, Known};
    use FramingError::*;
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        bool,
        Result<(BodyLength, bool), FramingError>,
    );
    let table: &[Row] = &[
        (&[], false, Ok((Known(0), true))),
        (&[("Content-Length", "12")], false, Ok((Known(12), true))),
        // §6.3 item 3: chunked is final; TE overrides CL and the connection closes.
        (
            &[("Transfer-Encoding", "chunked")],
            false,
            Ok((Chunked, true)),
        ),
        (
            &[("Transfer-Encoding", "gzip, chunked")],
            false,
            Ok((Chunked, true)),
        ),
        // RFC 9110 §5.6.1: empty elements are ignored.
        (
            &[("Transfer-Encoding", "chunked,")],
            false,
            Ok((Chunked, true)),
        ),
        (
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
            false,
            Ok((Chunked, false)),
        ),
        (
            &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            false,
            Ok((Chunked, false)),
        ),
        // §6.3 item 4: a final coding other than chunked is a 400.
        (
            &[("Transfer-Encoding", "chunked, gzip")],
            false,
            Err(NotChunked),
        ),
        (&[("Transfer-Encoding", "")], false, Err(NotChunked)),
        (
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "gzip"),
            ],
            false,
            Err(NotChunked),
        ),
        // §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        (
            &[("Transfer-Encoding", "chunked")],
            true,
            Err(TransferEncodingInHttp10),
        ),
        // §6.3 item 5 and RFC 9110 §8.6.
        (&[("Content-Length", "5, 5")], false, Ok((Known(5), true))),
        (
            &[("Content-Length", "5"), ("Content-Length", "5")],
            false,
            Ok((Known(5), true)),
        ),
        (&[("Content-Length", "5, 6")], false, Err(ConflictingLength)),
        (&[("Content-Length", "+5")], false, Err(InvalidLength)),
        (&[("Content-Length", "")], false, Err(InvalidLength)),
        (&[("Content-Length", "0x10")], false, Err(InvalidLength)),
        (
            &[("Content-Length", "12345678901234567890")],
            false,
            Err(InvalidLength),
        ),
        (
            &[("Content-Length", "x"), ("Transfer-Encoding", "chunked")],
            false,
            Err(InvalidLength),
        ),
        (&[("Connection", "close")], false, Ok((Known(0), false))),
        (&[("Connection", "keep-alive")], true, Ok((Known(0), true))),
    ];
    for (fields, http10, expected) in table {
        assert_eq!(
            framing(fields).request(*http10),
            *expected,
            "{fields:?} http10={http10}"
        );
    }
}

#[test]
fn response_framing_follows_rfc_9112_section_6_3() {
    use BodyLength::{Chunked, Known, UntilClose};
    let ok = StatusCode::OK;
    type Row<'a> = (
        &'a str,
        u16,
        bool,
        &'a [(&'a str, &'a str)],
        Result<(BodyLength, bool), FramingError>,
    );
    let table: &[Row] = &[
        (
            "GET",
            200,
            false,
            &[("Content-Length", "3")],
            Ok((Known(3), true)),
        ),
        // Item 1: HEAD, 1xx, 204, 304 have no body whatever the fields say.
        (
            "HEAD",
            200,
            false,
            &[("Content-Length", "3")],
            Ok((Known(0), true)),
        ),
        (
            "GET",
            204,
            false,
            &[("Transfer-Encoding", "chunked")],
            Ok((Known(0), true)),
        ),
        (
            "GET",
            304,
            false,
            &[("Content-Length", "9")],
            Ok((Known(0), true)),
        ),
        // Item 2: a 2xx to CONNECT is a tunnel.
        (
            "CONNECT",
            200,
            false,
            &[("Content-Length", "9")],
            Ok((Known(0), true)),
        ),
        // Item 3: chunked final; TE overrides CL (which is dropped).
        (
            "GET",
            200,
            false,
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "4")],
            Ok((Chunked, true)),
        ),
        (
            "GET",
            200,
            false,
            &[("Transfer-Encoding", "gzip, chunked,")],
            Ok((Chunked, true)),
        ),
        (
            "GET",
            200,
            false,
            &[("Transfer-Encoding", "gzip")],
            Ok((UntilClose, false)),
        ),
        // Item 5: invalid lengths are a 502.
        (
            "GET",
            200,
            false,
            &[("Content-Length", "1, 2")],
            Err(FramingError::ConflictingLength),
        ),
        (
            "GET",
            200,
            false,
            &[("Content-Length", "-1")],
            Err(FramingError::InvalidLength),
        ),
        // Item 7: no framing fields: until close.
        ("GET", 200, false, &[], Ok((UntilClose, false))),
        // §9.3 persistence.
        (
            "GET",
            200,
            false,
            &[("Connection", "close"), ("Content-Length", "1")],
            Ok((Known(1), false)),
        ),
        (
            "GET",
            200,
            true,
            &[("Content-Length", "1")],
            Ok((Known(1), false)),
        ),
        (
            "GET",
            200,
            true,
            &[("Connection", "keep-alive"), ("Content-Length", "1")],
            Ok((Known(1), true)),
        ),
        // §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        (
            "GET",
            200,
            true,
            &[("Transfer-Encoding", "chunked")],
            Err(FramingError::TransferEncodingInHttp10),
        ),
    ];
    for (method, status, http10, fields, expected) in table {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let status = StatusCode::from_u16(*status).unwrap_or(ok);
        let decided = framing(fields)
            .response(&method, status, *http10)
            .map(|f| (f.body, f.reusable));
        assert_eq!(
            decided, *expected,
            "{method} {status} {fields:?} http10={http10}"
        );
    }
    assert_eq!(
        framing(&[("Transfer-Encoding", "chunked"), ("Content-Length", "4")]).forwarded_length(),
        None,
        "TE wins: the length is not passed on"
    );
    assert_eq!(
        framing(&[("Content-Length", "4")]).forwarded_length(),
        Some(4)
    );
}

#[test]
fn only_framing_and_connection_fields_count() {
    let mut counted = Framing::default();
    for (name, value) in [
        ("x-content-length", "1"),
        ("Server", "app"),
        ("Keep-Alive", "5"),
    ] {
        counted.note(name.as_bytes(), value.as_bytes());
    }
    assert_eq!(counted, Framing::default());
    assert!(forwarded_as_is(b"Server"));
    assert!(!forwarded_as_is(b"Content-Length"));
    assert!(!forwarded_as_is(b"TE"));
}

#[test]
fn bodies_exist_except_where_rfc_9112_says_not() {
    let get = Method::GET;
    assert!(response_has_body(&get, StatusCode::OK));
    assert!(response_has_body(&get, StatusCode::NOT_FOUND));
    assert!(!response_has_body(&Method::HEAD, StatusCode::OK));
    assert!(!response_has_body(&get, StatusCode::CONTINUE));
    assert!(!response_has_body(&get, StatusCode::NO_CONTENT));
    assert!(!response_has_body(&get, StatusCode::NOT_MODIFIED));
    assert!(!response_has_body(&Method::CONNECT, StatusCode::OK));
    assert!(response_has_body(&Method::CONNECT, StatusCode::FORBIDDEN));
}

#[test]
fn host_rules_follow_rfc_9112_section_3_2() {
    let table: [(&[&str], bool, Result<(), HostError>); 8] = [
        (&["example.com"], false, Ok(())),
        (&["example.com:8080"], false, Ok(())),
        (&[], true, Ok(())),
        (&[], false, Err(HostError::Missing)),
        (&["a", "a"], false, Err(HostError::Repeated)),
        (&["a, b"], false, Err(HostError::Invalid)),
        (&["user@host"], false, Err(HostError::Invalid)),
        (&["host/path"], false, Err(HostError::Invalid)),
    ];
    for (hosts, http10, expected) in table {
        let values = hosts.iter().map(|h| h.as_bytes());
        assert_eq!(check_host(http10, values), expected, "{hosts:?}");
    }
    for good in [
        "",
        "localhost",
        "127.0.0.1:80",
        "[::1]",
        "[2001:db8::1]:443",
        "[v1.fe80::a+en1]",
        "xn--bcher-kva.example",
        "a%20b",
        "host:",
    ] {
        assert!(valid_host(good.as_bytes()), "{good:?}");
    }
    for bad in [
        "a b", "a\tb", "a:b:c", "[::1", "[::1]x", "[]", "host:8o", "a,b", "@host", "h/", "[zz::1]",
    ] {
        assert!(!valid_host(bad.as_bytes()), "{bad:?}");
    }
}

#[test]
fn expectations_and_upgrades() {
    // RFC 9110 §10.1.1: the token is case-insensitive.
    assert!(expects_continue(b"100-continue"));
    assert!(expects_continue(b"100-Continue "));
    assert!(!expects_continue(b"100-continue-please"));
    // RFC 9110 §7.8: HTTP/1.1, Upgrade, and the `upgrade` option.
    let upgrade = ConnectionOptions::of([&b"keep-alive, Upgrade"[..]]);
    assert!(wants_upgrade(false, upgrade, true));
    assert!(
        !wants_upgrade(true, upgrade, true),
        "HTTP/1.0 ignores Upgrade"
    );
    assert!(!wants_upgrade(false, upgrade, false));
    assert!(!wants_upgrade(false, ConnectionOptions::default(), true));
}

#[test]
fn trailers_never_carry_framing_routing_or_control_fields() {
    // RFC 9110 §6.5.1.
    for name in [
        "Content-Length",
        "transfer-encoding",
        "Host",
        "TE",
        "Trailer",
        "Authorization",
        "Set-Cookie",
        "Content-Type",
        "content-encoding",
        "Cache-Control",
        "Expect",
        "If-Match",
        "Range",
    ] {
        assert!(!allowed_in_trailers(name.as_bytes()), "{name}");
    }
    for name in [
        "grpc-status",
        "grpc-message",
        "x-checksum",
        "server-timing",
        "content",
    ] {
        assert!(allowed_in_trailers(name.as_bytes()), "{name}");
    }
}

#[test]
fn versions_and_the_http2_preface() {
    assert_eq!(minor_version(b"HTTP/1.1"), Some(1));
    assert_eq!(minor_version(b"HTTP/1.0"), Some(0));
    assert_eq!(minor_version(b"HTTP/1.2"), Some(2));
    assert_eq!(minor_version(b"HTTP/2.0"), None);
    assert_eq!(
        minor_version(b"http/1.1"),
        None,
        "the name is case-sensitive"
    );
    assert!(is_http2_preface(HTTP2_PREFACE));
    assert!(is_http2_preface(b"PRI * HT"));
    assert!(!is_http2_preface(b"GET / HTTP/1.1\r\n"));
    assert!(!is_http2_preface(b""));
}

#[test]
fn decimals_are_digits_only_and_bounded() {
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b"1234"), Some(1234));
    assert_eq!(
        parse_decimal(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
    for bad in [&b""[..], b"+1", b"1 ", b"0x10", b"12345678901234567890"] {
        assert_eq!(parse_decimal(bad), None, "{bad:?}");
    }
}

#[test]
fn chunk_size_lines_follow_rfc_9112_section_7_1() {
    assert_eq!(chunk_size(b"1a\r\n"), Some(26));
    assert_eq!(chunk_size(b"FF;name=value\r\n"), Some(255));
    assert_eq!(chunk_size(b"0 ; x\r\n"), Some(0));
    assert_eq!(chunk_size(b"5\t;x\r\n"), Some(5));
    assert_eq!(chunk_size(b"ffffffffffffffff\r\n"), Some(u64::MAX));
    for bad in [
        &b"\r\n"[..],
        b"g\r\n",
        b"1 2\r\n",
        b"10000000000000000\r\n",
        b"-1\r\n",
        // CRLF ends the line, and no other CR stands in it.
        b"5\n",
        b"5\r;x\r\n",
        b"5;a\rb\r\n",
        // BWS is spaces and tabs.
        b"5\x0c\r\n",
        b"5\x0b;x\r\n",
    ] {
        assert_eq!(chunk_size(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}
