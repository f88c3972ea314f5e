//! HTTP/1.1 semantics end to end, each test on every path combination
//! (direct or hyper server × kept or pooled upstream): Host rules, framing
//! of odd upstream responses, trailers, half-closed clients, versions, the
//! HTTP/2 preface, stalled response bodies, and which path served what.

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{raw_request, raw_upstream, stalling_upstream};
use crate::support::{
    Client, DEADLINE, FakeCollector, FakeUpstream, Sidecar, Yaml, forced_paths, scrape_until,
};

/// The reply as text.
async fn ask(base: &str, request: &[u8]) -> String {
    String::from_utf8_lossy(&raw_request(base, request).await).into_owned()
}

crate::on_every_path! {
/// RFC 9112 §3.2: exactly one Host, a valid `uri-host[:port]`, required
/// in HTTP/1.1; anything else is a 400 that never reaches the app.
async fn host_rules_are_enforced_before_the_app() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    for request in [
        &b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a, b\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
    ] {
        let reply = ask(&sidecar.base, request).await;
        assert!(
            reply.starts_with("HTTP/1.1 400 "),
            "{}: {reply}",
            String::from_utf8_lossy(request)
        );
    }
    assert!(upstream.seen().is_empty(), "nothing reached the app");
    // An absolute-form target's authority replaces Host (§3.2.2), and
    // `Connection: host` cannot remove it.
    let reply = ask(
        &sidecar.base,
        b"GET http://shop.example:8080/cart HTTP/1.1\r\nHost: other\r\n\
          Connection: close, host, x-hop\r\nX-Hop: 1\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let seen = upstream.last();
    assert_eq!(seen.uri.path(), "/cart");
    assert_eq!(seen.headers["host"], "shop.example:8080");
    assert!(seen.headers.get("x-hop").is_none(), "named by Connection");
    sidecar.stop().await;
}
}

crate::on_every_path! {
/// RFC 9112 §6.3 item 3: Transfer-Encoding wins over Content-Length, which
/// is not forwarded, also when `Connection` names other fields.
async fn a_response_with_both_framings_is_forwarded_chunked_without_its_length() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
           5\r\nhello\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\
          Content-Length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        // Empty list elements are ignored (RFC 9110 §5.6.1).
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let (server, addr) = raw_upstream(answer).await;
        let collector = FakeCollector::start().await;
        let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;
        let reply = ask(&sidecar.base, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        let shown = String::from_utf8_lossy(answer);
        assert!(reply.starts_with("HTTP/1.1 200 "), "{shown}: {reply}");
        let (head, body) = reply.split_once("\r\n\r\n").expect("a head");
        let head = head.to_ascii_lowercase();
        assert!(!head.contains("content-length"), "{shown}: {head}");
        assert!(!head.contains("x-hop"), "{shown}: {head}");
        assert!(head.contains("transfer-encoding: chunked"), "{shown}: {head}");
        assert_eq!(body, "5\r\nhello\r\n0\r\n\r\n", "{shown}");
        sidecar.stop().await;
        server.abort();
    }
}
}

crate::on_every_path! {
/// RFC 9112 §6.1: an HTTP/1.0 response with Transfer-Encoding has faulty
/// framing (502), and a response head over the limit is refused however
/// it arrives (one write here).
async fn faulty_or_oversized_response_heads_are_502() {
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ".to_vec();
    big.resize(100 * 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let big: &'static [u8] = big.leak();
    for answer in [
        &b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        big,
    ] {
        let (server, addr) = raw_upstream(answer).await;
        let collector = FakeCollector::start().await;
        let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;
        let reply = Client::http1().get(&sidecar.base, &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", &String::from_utf8_lossy(answer)[..40]);
        let spans = collector.wait_for(1).await;
        assert!(spans[0]["tags"]["error"].is_string(), "{}", spans[0]);
        sidecar.stop().await;
        server.abort();
    }
}
}

crate::on_every_path! {
/// A client that half-closes after a complete request still gets its
/// response; a request body that breaks chunked syntax is a 400.
async fn half_closed_clients_are_answered_and_broken_chunks_are_400() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let addr = sidecar.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    socket.shutdown().await.expect("half-close");
    let mut reply = Vec::new();
    tokio::time::timeout(DEADLINE, socket.read_to_end(&mut reply))
        .await
        .expect("answered, then closed")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let reply = ask(
        &sidecar.base,
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    sidecar.stop().await;
}
}

crate::on_every_path! {
/// An HTTP/2 preface after an HTTP/1.1 request on the same connection is
/// not an upgrade to HTTP/2 (RFC 9113 §3.4): 400.
async fn an_http2_preface_after_a_request_is_refused() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let reply = ask(
        &sidecar.base,
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    // tracehop's connection answers 400; hyper closes without a word.
    // Either way the connection ended and HTTP/2 was never spoken.
    if !forced_paths().hyper {
        assert!(reply.contains("HTTP/1.1 400 "), "{reply}");
    }
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1 + usize::from(!forced_paths().hyper));
    assert_eq!(upstream.seen().len(), 1);
    sidecar.stop().await;
}
}

crate::on_every_path! {
/// A request's trailer section never forwards fields a trailer must not
/// carry (RFC 9110 §6.5.1); the others pass.
async fn request_trailers_lose_framing_and_routing_fields() {
    let (listener, addr) = crate::support::bind().await;
    let upstream = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.ends_with(b"\r\n\r\n") || !seen.windows(3).any(|w| w == b"0\r\n") {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "request cut short: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .expect("write");
        String::from_utf8_lossy(&seen).into_owned()
    });
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;
    let reply = ask(
        &sidecar.base,
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\
          Trailer: X-Checksum, Content-Length, Host\r\n\r\n\
          5\r\nhello\r\n0\r\nX-Checksum: 1\r\nContent-Length: 9\r\nHost: evil\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let seen = tokio::time::timeout(DEADLINE, upstream).await.expect("in time").expect("upstream");
    let trailers = seen.rsplit_once("\r\n0\r\n").expect("chunked upload").1.to_ascii_lowercase();
    assert!(trailers.contains("x-checksum: 1"), "{seen}");
    assert!(!trailers.contains("content-length"), "{seen}");
    assert!(!trailers.contains("host"), "{seen}");
    sidecar.stop().await;
}
}

crate::on_every_path! {
/// An upstream body that stops sending is cut off after
/// `timeouts.response_body`: the downstream connection closes and the
/// span says why.
async fn a_stalled_response_body_is_cut_off() {
    let (server, addr) =
        stalling_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf").await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        inbound: "  timeouts:\n    response_body: 200ms\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, addr, collector.addr).await;
    let reply = ask(&sidecar.base, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(reply.ends_with("half"), "what came is passed on: {reply}");
    let spans = collector.wait_for(1).await;
    let error = spans[0]["tags"]["error"].as_str().unwrap_or("");
    assert!(error.contains("stalled"), "{}", spans[0]);
    sidecar.stop().await;
    server.abort();
}
}

/// HTTP/1.2 is read as HTTP/1.1 (RFC 9112 §2.3) where tracehop reads the
/// head; hyper, which serves a connection from its first byte only when
/// forced, refuses it.
#[tokio::test]
async fn later_minor_versions_are_served_as_http_1_1() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let reply = ask(
        &sidecar.base,
        b"GET /v HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert_eq!(upstream.last().uri.path(), "/v");
    sidecar.stop().await;
}

/// Which path served a request, and why, is in `tracehop_requests_total`.
#[tokio::test]
async fn the_path_and_the_reason_for_hyper_are_counted() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    ask(
        &sidecar.base,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let reply = ask(
        &sidecar.base,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    )
    .await;
    assert!(reply.contains("HTTP/1.1 200 "), "{reply}");
    let text = scrape_until(&sidecar.admin, r#"fallback="chunked""#).await;
    for line in [
        r#"tracehop_requests_total{direction="inbound",fallback="none",method="GET",path="direct",status_class="2xx"} 1"#,
        r#"tracehop_requests_total{direction="inbound",fallback="chunked",method="POST",path="hyper",status_class="2xx"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    sidecar.stop().await;
    // Forced onto hyper, every request says so.
    crate::support::on_path(
        tracehop::http1::path::Forced {
            hyper: true,
            pooled: true,
        },
        async {
            let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
            ask(
                &sidecar.base,
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            )
            .await;
            let text = scrape_until(&sidecar.admin, r#"fallback="forced""#).await;
            assert!(text.contains(r#"path="hyper""#), "{text}");
            sidecar.stop().await;
        },
    )
    .await;
}
