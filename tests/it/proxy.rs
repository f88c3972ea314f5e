//! Forwarding behaviour: protocols, headers, failures.

use std::time::Duration;

use http::StatusCode;

use crate::support::raw::{raw_request, raw_upstream};
use crate::support::{Client, FakeCollector, FakeUpstream, Sidecar, Yaml, bind, closed_port};

crate::on_every_path! {
async fn forwards_http1_and_http2_to_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    for client in [Client::http1(), Client::http2()] {
        let reply = client
            .get(&format!("{}/users/7?x=1", sidecar.base), &[])
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "hello");
        let seen = upstream.last();
        assert_eq!(seen.uri.path_and_query().unwrap().as_str(), "/users/7?x=1");
        // auto: plain HTTP/2 requests reach an HTTP/1.1 upstream as HTTP/1.1.
        assert_eq!(seen.version, http::Version::HTTP_11);
        let host = seen.headers.get("host").unwrap().to_str().unwrap();
        assert_eq!(
            host,
            sidecar.running.inbound_addr.to_string(),
            "Host is kept"
        );
    }
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn upstream_connections_follow_downstream_connections() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let peers = |from: usize| {
        let seen = upstream.seen();
        let peers: std::collections::HashSet<_> = seen[from..].iter().map(|s| s.peer).collect();
        (seen.len() - from, peers.len())
    };
    // Sequential requests on one HTTP/1.1 connection: one upstream connection.
    let http1 = Client::http1();
    for i in 0..5 {
        let reply = http1.get(&format!("{}/n/{i}", sidecar.base), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(peers(0), (5, 1));
    // Concurrent HTTP/2 streams on one connection go out side by side.
    let http2 = std::sync::Arc::new(Client::http2());
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (client, url) = (http2.clone(), format!("{}/m/{i}", sidecar.base));
        streams.spawn(async move { client.get(&url, &[]).await });
    }
    while let Some(reply) = streams.join_next().await {
        let reply = reply.expect("stream task");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "hello")
        );
    }
    assert_eq!(upstream.seen().len(), 13);
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn hop_by_hop_headers_are_dropped_and_forwarded_headers_appended() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    Client::http1()
        .get(
            &sidecar.base,
            &[
                ("connection", "x-private"),
                ("x-private", "hop"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("x-forwarded-for", "203.0.113.9"),
                ("baggage", "userId=alice"),
                ("x-app", "kept"),
            ],
        )
        .await;
    let headers = upstream.last().headers;
    for gone in ["x-private", "keep-alive", "proxy-authorization"] {
        assert!(headers.get(gone).is_none(), "{gone} must not be forwarded");
    }
    assert_eq!(headers.get("x-app").unwrap(), "kept");
    assert_eq!(headers.get("baggage").unwrap(), "userId=alice");
    assert_eq!(
        headers.get("x-forwarded-for").unwrap(),
        "203.0.113.9, 127.0.0.1"
    );
    assert_eq!(headers.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(
        headers.get("x-forwarded-host").unwrap().to_str().unwrap(),
        sidecar.running.inbound_addr.to_string()
    );
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn unreachable_upstream_is_502_with_an_error_span() {
    let (_closed_socket, dead) = closed_port();
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), dead, collector.addr).await;
    let reply = Client::http1()
        .get(&format!("{}/orders/1", sidecar.base), &[])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body, "upstream unreachable\n");
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    let spans = collector.wait_for(1).await;
    assert_eq!(spans[0]["tags"]["http.response.status_code"], "502");
    assert!(
        spans[0]["tags"]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        spans[0]
    );
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn hanging_upstream_is_504_after_the_timeout() {
    // Accepts connections but never answers.
    let (hang, hang_addr) = bind().await;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hang.accept().await {
            held.push(socket);
        }
    });
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        inbound: "  timeouts:\n    upstream_response: 200ms\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, hang_addr, collector.addr).await;
    let started = std::time::Instant::now();
    let reply = Client::http1().get(&sidecar.base, &[]).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let spans = collector.wait_for(1).await;
    assert!(
        spans[0]["tags"]["error"]
            .as_str()
            .unwrap()
            .contains("no response")
    );
    let metrics = Client::http1()
        .get(&format!("{}/metrics", sidecar.admin), &[])
        .await;
    assert!(
        metrics
            .body
            .contains(r#"tracehop_upstream_errors_total{direction="inbound",kind="timeout"} 1"#),
        "{}",
        metrics.body
    );
    sidecar.stop().await;
    holder.abort();
}
}

crate::on_every_path! {
async fn methods_and_bodies_are_forwarded() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let request = http::Request::put(format!("{}/orders/9", sidecar.base))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"{\"qty\":3}",
        )))
        .expect("request");
    let reply = crate::support::client::read(Client::http1().send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = upstream.last();
    assert_eq!(seen.method, http::Method::PUT);
    assert_eq!(seen.body_len, 9);
    let spans = collector.wait_for(1).await;
    assert_eq!(spans[0]["name"], "put /orders/{id}");
    assert_eq!(spans[0]["tags"]["http.request.body.size"], "9");
    assert_eq!(spans[0]["tags"]["http.response.body.size"], "5");
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn an_upstream_reset_mid_response_closes_the_downstream_and_is_recorded() {
    // Promises 100 bytes, sends 9, then closes the connection.
    let (server, reset_addr) =
        raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-some").await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), reset_addr, collector.addr).await;
    let response = Client::http1()
        .send(
            http::Request::get(&sidecar.base)
                .body(http_body_util::Full::default())
                .expect("request"),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the head was already on its way"
    );
    let body = http_body_util::BodyExt::collect(response.into_body()).await;
    assert!(
        body.is_err(),
        "the downstream sees the body break off, not a short success"
    );
    let spans = collector.wait_for(1).await;
    assert!(
        spans[0]["tags"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("upstream body failed"),
        "{}",
        spans[0]
    );
    crate::support::scrape_until(
        &sidecar.admin,
        r#"tracehop_upstream_errors_total{direction="inbound",kind="body"} 1"#,
    )
    .await;
    sidecar.stop().await;
    server.abort();
}
}

crate::on_every_path! {
async fn a_malformed_upstream_response_is_a_502_with_an_error_span() {
    // Two Content-Length values that disagree (RFC 9110 §8.6).
    let (server, bad_addr) =
        raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok").await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), bad_addr, collector.addr).await;
    let reply = Client::http1().get(&sidecar.base, &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let spans = collector.wait_for(1).await;
    let error = spans[0]["tags"]["error"].as_str().unwrap_or("");
    // Each path's own words, both naming the field.
    assert!(
        error.to_ascii_lowercase().contains("content-length"),
        "{}",
        spans[0]
    );
    crate::support::scrape_until(
        &sidecar.admin,
        r#"tracehop_upstream_errors_total{direction="inbound",kind="protocol"} 1"#,
    )
    .await;
    sidecar.stop().await;
    server.abort();
}
}

crate::on_every_path! {
async fn an_http10_request_without_host_reaches_the_app_with_the_upstream_as_host() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let reply = raw_request(&sidecar.base, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(
        reply.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // HTTP/1.1 requires Host (RFC 9112 §3.2): the app gets its own authority.
    let seen = upstream.last();
    assert_eq!(seen.headers["host"], upstream.addr.to_string().as_str());
    sidecar.stop().await;
}
}

crate::on_every_path! {
/// The upstream's end-to-end fields reach the client on both server paths
/// (plain HTTP/1.1 requests are answered with the fields as they came;
/// others, such as HTTP/1.0, through hyper from a header map), and its
/// fields about its own connection do not.
async fn response_fields_pass_through_on_both_server_paths() {
    let (server, addr) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nServer: app\r\nX-App: 1\r\nConnection: keep-alive\r\n\
          Keep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;
    for request in [
        "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        let reply = raw_request(&sidecar.base, request.as_bytes()).await;
        let reply = String::from_utf8_lossy(&reply).to_ascii_lowercase();
        for expected in [
            "\r\nserver: app\r\n",
            "\r\nx-app: 1\r\n",
            "\r\ncontent-length: 5\r\n",
        ] {
            assert!(reply.contains(expected), "{request:?}: {reply}");
        }
        assert!(reply.ends_with("\r\n\r\nhello"), "{request:?}: {reply}");
        assert!(
            !reply.contains("keep-alive: timeout"),
            "{request:?}: {reply}"
        );
        assert_eq!(reply.matches("\r\ndate: ").count(), 1, "{reply}");
    }
    sidecar.stop().await;
    server.abort();
}
}

/// A TCP relay that forwards every connection to wherever `target` says
/// once it is set: an address that leads back to the sidecar without
/// being one of its listeners (as a DNS name or another proxy would).
async fn relay() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::OnceLock<std::net::SocketAddr>>,
) {
    let (listener, addr) = bind().await;
    let target = std::sync::Arc::new(std::sync::OnceLock::<std::net::SocketAddr>::new());
    let to = target.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let Some(target) = to.get().copied() else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, target)
}

crate::on_every_path! {
async fn a_request_that_comes_back_to_its_listener_gets_508_before_it_is_forwarded_again() {
    let collector = FakeCollector::start().await;
    let (back, target) = relay().await;
    let sidecar = Sidecar::start(Yaml::default(), back, collector.addr).await;
    target.set(sidecar.running.inbound_addr).expect("set once");
    let reply = Client::http1()
        .get(&format!("{}/orders/1", sidecar.base), &[("via", "1.0 fred")])
        .await;
    // The second pass refuses; the first forwards that answer back.
    assert_eq!(reply.status, StatusCode::LOOP_DETECTED);
    assert!(reply.body.starts_with("loop detected"), "{}", reply.body);
    let spans = collector.wait_for(2).await;
    assert_eq!(spans.len(), 2, "exactly two passes: {spans:#?}");
    let looped = spans
        .iter()
        .find(|span| span["tags"]["error"].as_str().is_some_and(|e| e.contains("forwarding loop")))
        .unwrap_or_else(|| panic!("an error span for the loop: {spans:#?}"));
    assert_eq!(looped["tags"]["http.response.status_code"], "508");
    // Both passes are one trace: the second continues the first's context.
    assert_eq!(spans[0]["traceId"], spans[1]["traceId"]);
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn the_upstream_sees_this_listeners_via_entry_after_the_others() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let reply = Client::http1()
        .get(
            &format!("{}/", sidecar.base),
            // Another sidecar's inbound entry is not this one's: no loop.
            &[("via", "1.0 fred, 1.1 tracehop-0000000000000000-inbound")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let via = upstream.last().headers.get("via").expect("via").to_str().unwrap().to_owned();
    let (before, mine) = via.rsplit_once(", ").expect("a list");
    assert_eq!(before, "1.0 fred, 1.1 tracehop-0000000000000000-inbound");
    let pseudonym = mine.strip_prefix("1.1 tracehop-").expect("1.1 and the pseudonym");
    let (instance, listener) = pseudonym.split_once('-').expect("instance-listener");
    assert_eq!(instance.len(), 16, "{via}");
    assert_eq!(listener, "inbound");
    sidecar.stop().await;
}
}
