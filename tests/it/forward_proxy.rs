//! The forward proxy: allow-listed targets traced, everything else refused.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{DEADLINE, FakeCollector, FakeUpstream, Sidecar, Yaml, bind, closed_port};

/// Sends a raw request and reads until the end of the response head (and
/// `body_len` bytes of body).
async fn raw(proxy: SocketAddr, request: &str, body_len: usize) -> (String, String, TcpStream) {
    let mut socket = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(DEADLINE, socket.read_exact(&mut byte))
            .await
            .expect("response head in time")
            .expect("read");
        head.push(byte[0]);
    }
    let mut body = vec![0u8; body_len];
    tokio::time::timeout(DEADLINE, socket.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("read body");
    (
        String::from_utf8_lossy(&head).into_owned(),
        String::from_utf8_lossy(&body).into_owned(),
        socket,
    )
}

/// A TCP echo server.
async fn echo() -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn only_allow_listed_targets_are_reached_and_traced() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let echo = echo().await;
    let (_, denied_addr) = bind().await;
    let other = format!(
        "outbound:\n  forward_proxy:\n    listen: 127.0.0.1:0\n    connect: true\n    \
         allow: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        upstream.addr.port(),
        echo.port()
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let proxy = sidecar
        .running
        .forward_proxy_addr
        .expect("forward proxy bound");

    // An allowed absolute-form request goes through, with a CLIENT span.
    let target = upstream.addr;
    let (head, body, _) = raw(
        proxy,
        &format!(
            "GET http://{target}/users/5 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        ),
        5,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hello");
    assert!(upstream.last().headers.contains_key("traceparent"));

    // Anything else: 403, and nothing reaches it.
    let denied = denied_addr;
    let (head, _, _) = raw(
        proxy,
        &format!("GET http://{denied}/ HTTP/1.1\r\nHost: {denied}\r\nConnection: close\r\n\r\n"),
        0,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, _, _) = raw(
        proxy,
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        0,
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "not an open proxy: {head}"
    );
    let (head, _, _) = raw(proxy, "GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n", 0).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (head, _, _) = raw(
        proxy,
        &format!("CONNECT {denied} HTTP/1.1\r\nHost: {denied}\r\n\r\n"),
        0,
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "CONNECT outside the list: {head}"
    );

    // An allowed CONNECT tunnels bytes; its span covers the tunnel.
    let (head, _, mut tunnel) = raw(
        proxy,
        &format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n"),
        0,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tunnel
        .write_all(b"through the tunnel")
        .await
        .expect("write");
    let mut echoed = [0u8; 18];
    tokio::time::timeout(DEADLINE, tunnel.read_exact(&mut echoed))
        .await
        .expect("echo")
        .expect("read");
    assert_eq!(&echoed, b"through the tunnel");
    drop(tunnel);

    let spans = collector.wait_for(6).await;
    let client = |path: &str| {
        spans
            .iter()
            .find(|s| s["tags"]["url.path"] == path && s["kind"] == "CLIENT")
            .unwrap_or_else(|| panic!("no CLIENT span for {path}: {spans:#?}"))
            .clone()
    };
    let allowed = client("/users/5");
    assert_eq!(allowed["remoteEndpoint"]["serviceName"], "127.0.0.1");
    assert_eq!(allowed["tags"]["http.response.status_code"], "200");
    let tunnel_span = spans
        .iter()
        .find(|s| {
            s["tags"]["http.request.method"] == "CONNECT"
                && s["tags"]["http.response.status_code"] == "200"
        })
        .expect("a span for the tunnel");
    assert_eq!(tunnel_span["tags"]["http.request.body.size"], "18");
    assert_eq!(tunnel_span["tags"]["http.response.body.size"], "18");
    let refused = spans
        .iter()
        .filter(|s| s["tags"]["http.response.status_code"] == "403")
        .count();
    assert_eq!(refused, 3, "each refused request has an error span");
    sidecar.stop().await;
}

#[tokio::test]
async fn connect_is_refused_unless_enabled() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let other = format!(
        "outbound:\n  forward_proxy:\n    listen: 127.0.0.1:0\n    allow: [\"127.0.0.1:{}\"]\n",
        upstream.addr.port()
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let proxy = sidecar
        .running
        .forward_proxy_addr
        .expect("forward proxy bound");
    let target = upstream.addr;
    let (head, _, _) = raw(
        proxy,
        &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        0,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    sidecar.stop().await;
}

#[tokio::test]
async fn an_unreachable_allowed_target_is_named_in_the_error_span() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let (_closed_socket, closed) = closed_port();
    let other = format!(
        "outbound:\n  forward_proxy:\n    listen: 127.0.0.1:0\n    allow: [\"127.0.0.1:{}\"]\n",
        closed.port()
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let proxy = sidecar
        .running
        .forward_proxy_addr
        .expect("forward proxy bound");
    let (head, _, _) = raw(
        proxy,
        &format!("GET http://{closed}/ HTTP/1.1\r\nHost: {closed}\r\nConnection: close\r\n\r\n"),
        0,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let spans = collector.wait_for(1).await;
    let error = spans[0]["tags"]["error"].as_str().expect("an error tag");
    assert!(
        error.contains(&format!("upstream {closed} unreachable")),
        "{error}"
    );
    sidecar.stop().await;
}
