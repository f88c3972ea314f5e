//! Bodies stream both ways without buffering; upgrades and trailers pass.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

use crate::support::{FakeCollector, Sidecar, Yaml, upstream_with, within};
use tracehop::server::BoxError;

crate::on_every_path! {
async fn request_body_streams_chunk_by_chunk() {
    // The upstream reports every chunk as it arrives.
    let (chunks_tx, mut chunks) = mpsc::unbounded_channel::<usize>();
    let (addr, _stop) = upstream_with(move |request: Request<tracehop::server::RequestBody>| {
        let chunks_tx = chunks_tx.clone();
        async move {
            let mut body = request.into_body();
            let mut total = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    total += data.len();
                    let _ = chunks_tx.send(data.len());
                }
            }
            Response::new(
                Full::new(Bytes::from(total.to_string()))
                    .map_err(|e| match e {})
                    .boxed(),
            )
        }
    })
    .await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;

    let client = HyperClient::builder(TokioExecutor::new()).build_http();
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::post(format!("{}/upload", sidecar.base))
        .body(body)
        .expect("request");
    let response = tokio::spawn(client.request(request));
    // Lockstep: each chunk reaches the upstream before the next is sent,
    // so the sidecar cannot be buffering the body.
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut received = 0usize;
    for _ in 0..64 {
        tx.send_data(chunk.clone()).await.expect("send chunk");
        while received < chunk.len() {
            received += within("chunk at upstream", chunks.recv())
                .await
                .expect("chunk");
        }
        received -= chunk.len();
    }
    // Then a bulk tail: 64 MiB more, without waiting in between.
    let big = Bytes::from(vec![b'y'; 1024 * 1024]);
    for _ in 0..64 {
        tx.send_data(big.clone()).await.expect("send chunk");
    }
    drop(tx);
    let response = within("response", response)
        .await
        .expect("join")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let total = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(total, (64 * 64 * 1024 + 64 * 1024 * 1024).to_string());
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn slow_chunked_response_streams_chunk_by_chunk() {
    // The upstream sends a chunk, then waits until the test says the client saw it.
    let (go_tx, go_rx) = mpsc::unbounded_channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let (addr, _stop) = upstream_with(move |_request| {
        let go_rx = go_rx.clone();
        async move {
            let (mut tx, body) = Channel::<Bytes, BoxError>::new(1);
            tokio::spawn(async move {
                for i in 0..5 {
                    if tx
                        .send_data(Bytes::from(format!("chunk{i};")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if go_rx.lock().await.recv().await.is_none() {
                        return;
                    }
                }
            });
            Response::new(body.boxed())
        }
    })
    .await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;
    let client = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .get(format!("{}/stream", sidecar.base).parse().expect("uri"))
        .await
        .expect("response head arrives before the body is complete");
    let mut body = response.into_body();
    for i in 0..5 {
        let frame: Frame<Bytes> = within("next chunk", body.frame())
            .await
            .expect("frame")
            .expect("ok");
        assert_eq!(frame.into_data().expect("data"), format!("chunk{i};"));
        go_tx.send(()).expect("upstream waiting");
    }
    assert!(within("end", body.frame()).await.is_none());
    let spans = collector.wait_for(1).await;
    assert_eq!(spans[0]["tags"]["http.response.body.size"], "35");
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn websocket_upgrade_is_tunnelled() {
    // An upstream that accepts the upgrade and echoes bytes back.
    let (addr, _stop) = upstream_with(
        |mut request: Request<tracehop::server::RequestBody>| async move {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = hyper_util::rt::TokioIo::new(upgraded);
                    let mut buf = [0u8; 64];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut response =
                Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            response
                .headers_mut()
                .insert("connection", "upgrade".parse().expect("value"));
            response
                .headers_mut()
                .insert("upgrade", "websocket".parse().expect("value"));
            response
        },
    )
    .await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "shutdown:\n  grace_period: 300ms\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, addr, collector.addr).await;
    let mut socket = tokio::net::TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    socket
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .expect("write handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        within("101 head", socket.read_exact(&mut byte))
            .await
            .expect("read");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    socket
        .write_all(b"ping through the tunnel")
        .await
        .expect("write");
    let mut echoed = [0u8; 23];
    within("echo", socket.read_exact(&mut echoed))
        .await
        .expect("read echo");
    assert_eq!(&echoed, b"ping through the tunnel");
    let spans = collector.wait_for(1).await;
    assert_eq!(spans[0]["tags"]["http.response.status_code"], "101");
    // The server owns the tunnel: shutdown gives it the grace period, then
    // closes it.
    let stopping = std::time::Instant::now();
    sidecar.stop().await;
    assert!(stopping.elapsed() >= std::time::Duration::from_millis(250));
    let mut rest = Vec::new();
    let closed = within("tunnel closed at shutdown", socket.read_to_end(&mut rest)).await;
    assert!(closed.is_ok_and(|n| n == 0) || rest.is_empty(), "{rest:?}");
}
}

crate::on_every_path! {
async fn grpc_trailers_pass_through_and_the_status_decides_the_error() {
    // `Get` answers NOT_FOUND, `Crash` INTERNAL, both in the trailers.
    let (addr, _stop) = upstream_with(
        |request: Request<tracehop::server::RequestBody>| async move {
            assert_eq!(
                request.version(),
                http::Version::HTTP_2,
                "gRPC goes upstream over HTTP/2"
            );
            assert_eq!(
                request.headers().get("te").map(|v| v.as_bytes()),
                Some(&b"trailers"[..])
            );
            let status = if request.uri().path().ends_with("/Crash") { "13" } else { "5" };
            let (mut tx, body) = Channel::<Bytes, BoxError>::new(2);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"\0\0\0\0\0")).await;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", status.parse().expect("value"));
                trailers.insert("grpc-message", "user not found".parse().expect("value"));
                let _ = tx.send_trailers(trailers).await;
            });
            let mut response = Response::new(body.boxed());
            response
                .headers_mut()
                .insert("content-type", "application/grpc".parse().expect("value"));
            response
        },
    )
    .await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), addr, collector.addr).await;
    let client = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    for (method, status) in [("Get", "5"), ("Crash", "13")] {
        let request = Request::post(format!("{}/users.Users/{method}", sidecar.base))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
            .expect("request");
        let response = within("grpc response", client.request(request))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected
            .trailers()
            .cloned()
            .expect("trailers pass through");
        assert_eq!(trailers.get("grpc-status").expect("grpc-status"), status);
        assert_eq!(
            trailers.get("grpc-message").expect("grpc-message"),
            "user not found"
        );
    }
    let spans = collector.wait_for(2).await;
    let span = |method: &str| {
        spans
            .iter()
            .find(|s| s["tags"]["rpc.method"] == method)
            .unwrap_or_else(|| panic!("a span for {method} in {spans:?}"))
    };
    let get = span("Get");
    assert_eq!(get["name"], "users.Users/Get");
    assert_eq!(get["tags"]["rpc.system"], "grpc");
    assert_eq!(get["tags"]["rpc.service"], "users.Users");
    assert_eq!(get["tags"]["rpc.grpc.status_code"], "5");
    assert_eq!(get["tags"]["network.protocol.version"], "2");
    // NOT_FOUND is the caller's problem, not the server's (OpenTelemetry).
    assert!(get["tags"].get("error").is_none(), "{get}");
    let crash = span("Crash");
    assert_eq!(crash["tags"]["rpc.grpc.status_code"], "13");
    assert_eq!(crash["tags"]["error"], "grpc-status 13");
    sidecar.stop().await;
}
}
