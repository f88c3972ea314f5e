//! Limits against hostile or broken downstreams: slow heads (slowloris),
//! idle keep-alive connections, oversized heads, too many connections,
//! too many HTTP/2 streams, and stalled uploads; and each listener kind
//! (inbound, outbound route, forward proxy) with its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::support::{
    Client, DEADLINE, FakeCollector, FakeUpstream, Sidecar, Stopper, Yaml, bind, eventually,
    stopper,
};
use tracehop::server::{self, Body, ServerOptions, full};

/// Reads from `stream` until the peer closes it; returns what was read and
/// how long it took. Fails the test after the deadline.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {DEADLINE:?}; read: {}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

/// Reads one response head (up to the blank line) on a keep-alive connection.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
            .await
            .expect("response within the deadline")
            .expect("read");
        assert!(n > 0, "closed before a response head");
        out.push(byte[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends one keep-alive request and reads the 5-byte `hello` response.
async fn roundtrip(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(stream).await;
    let mut body = [0u8; 5];
    stream.read_exact(&mut body).await.expect("body");
    head
}

#[tokio::test]
async fn a_slow_head_is_cut_off_and_other_clients_are_served() {
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    let inbound = "  timeouts:\n    header_read: 300ms\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let addr = sidecar.running.inbound_addr;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nX-Slow: ")
        .await
        .expect("write");
    // Meanwhile a well-behaved client is served.
    let reply = Client::http1()
        .get(&format!("{}/ok", sidecar.base), &[])
        .await;
    assert_eq!(reply.status, 200);
    let (read, took) = read_until_closed(&mut slow).await;
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    assert!(
        !read.contains("200 OK"),
        "the partial request was answered: {read}"
    );
    assert!(upstream.seen().iter().all(|s| s.uri.path() == "/ok"));
    sidecar.stop().await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_idle() {
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    let inbound = "  timeouts:\n    header_read: 10s\n    idle: 300ms\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let mut stream = TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    let head = roundtrip(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Still usable before the idle timeout.
    assert!(roundtrip(&mut stream).await.starts_with("HTTP/1.1 200"));
    let (_, took) = read_until_closed(&mut stream).await;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    sidecar.stop().await;
}

/// hyper (1.x) starts its HTTP/1.1 header-read timer whenever it waits for
/// a request head, including between keep-alive requests: the shorter of
/// `header_read` and `idle` closes an idle HTTP/1.1 connection.
#[tokio::test]
async fn header_read_also_bounds_the_wait_between_http1_requests() {
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    let inbound = "  timeouts:\n    header_read: 300ms\n    idle: 60s\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let mut stream = TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    assert!(roundtrip(&mut stream).await.starts_with("HTTP/1.1 200"));
    let (_, took) = read_until_closed(&mut stream).await;
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    sidecar.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_gets_goaway_after_idle() {
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    let inbound = "  timeouts:\n    idle: 300ms\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let stream = TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let start = Instant::now();
    let driver = tokio::spawn(connection);
    let request = Request::get(format!("{}/", sidecar.base))
        .body(Full::<Bytes>::default())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    drop(response);
    tokio::time::timeout(DEADLINE, driver)
        .await
        .expect("the sidecar closes the idle HTTP/2 connection")
        .expect("join")
        .expect("clean close");
    assert!(start.elapsed() >= Duration::from_millis(250));
    sidecar.stop().await;
}

#[tokio::test]
async fn an_oversized_head_gets_431_and_a_normal_one_passes() {
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    let inbound = "  limits:\n    max_header_bytes: 16384\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let addr = sidecar.running.inbound_addr;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let big = "a".repeat(64 * 1024);
    let request = format!("GET /big HTTP/1.1\r\nHost: app\r\nX-Big: {big}\r\n\r\n");
    // The sidecar may close before reading everything: ignore write errors.
    let _ = stream.write_all(request.as_bytes()).await;
    let (read, _) = read_until_closed(&mut stream).await;
    assert!(read.starts_with("HTTP/1.1 431"), "{read}");
    let small = "a".repeat(4 * 1024);
    let reply = Client::http1()
        .get(&format!("{}/small", sidecar.base), &[("x-small", &small)])
        .await;
    assert_eq!(reply.status, 200);
    assert!(upstream.seen().iter().all(|s| s.uri.path() == "/small"));
    sidecar.stop().await;
}

#[tokio::test]
async fn beyond_max_connections_new_ones_wait_and_open_ones_keep_working() {
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    let inbound = "  limits:\n    max_connections: 2\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let addr = sidecar.running.inbound_addr;
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    assert!(roundtrip(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(roundtrip(&mut second).await.starts_with("HTTP/1.1 200"));
    // The third is queued by the kernel but not served while both are open.
    let mut third = TcpStream::connect(addr).await.expect("connect");
    third
        .write_all(b"GET /third HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(waited.is_err(), "the third connection was served");
    assert!(roundtrip(&mut first).await.starts_with("HTTP/1.1 200"));
    drop(second);
    let head = read_head(&mut third).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    sidecar.stop().await;
}

/// An upstream that holds every request until released and records how
/// many were in flight at once, and how each request body ended.
struct GatedUpstream {
    addr: SocketAddr,
    gate: Arc<Semaphore>,
    peak: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Result<usize, String>>>>,
    _stop: Stopper,
}

impl GatedUpstream {
    async fn start() -> Self {
        let (listener, addr) = bind().await;
        let gate = Arc::new(Semaphore::new(0));
        let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = stopper();
        let state = (gate.clone(), active, peak.clone(), bodies.clone());
        let handler = move |request: Request<tracehop::server::RequestBody>, _conn| {
            let (gate, active, peak, bodies) = state.clone();
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let body = request.into_body().collect().await;
                let ended = body.map(|b| b.to_bytes().len()).map_err(|e| e.to_string());
                let upload_failed = ended.is_err();
                bodies.lock().expect("lock").push(ended);
                if !upload_failed {
                    let _ = gate.acquire().await.map(|p| p.forget());
                }
                active.fetch_sub(1, Ordering::SeqCst);
                Response::new(full("done")) as Response<Body>
            }
        };
        // hyper's server streams request bodies to the handler, so an
        // upload the proxy aborts is seen failing.
        let options = ServerOptions {
            force_hyper: true,
            ..ServerOptions::default()
        };
        tokio::spawn(server::serve(listener, options, handler, shutdown));
        Self {
            addr,
            gate,
            peak,
            bodies,
            _stop: stop,
        }
    }
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_wait_for_a_free_one() {
    let upstream = GatedUpstream::start().await;
    let collector = FakeCollector::start().await;
    let inbound = "  limits:\n    max_concurrent_streams: 2\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let stream = TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    // One request first, so the client has the server's SETTINGS (streams
    // opened before it may be refused, RFC 9113 §5.1.2).
    upstream.gate.add_permits(1);
    let warm = Request::get(format!("{}/warm", sidecar.base))
        .body(Full::<Bytes>::default())
        .expect("req");
    let status = sender.clone().send_request(warm).await.expect("warm-up");
    assert_eq!(status.status(), 200);
    let mut calls = Vec::new();
    for i in 0..5 {
        let mut sender = sender.clone();
        let url = format!("{}/stream/{i}", sidecar.base);
        calls.push(tokio::spawn(async move {
            let request = Request::get(url)
                .body(Full::<Bytes>::default())
                .expect("req");
            sender.send_request(request).await.map(|r| r.status())
        }));
    }
    eventually("two streams at the upstream", || {
        upstream.peak.load(Ordering::SeqCst) >= 2
    })
    .await;
    upstream.gate.add_permits(5);
    for call in calls {
        let status = tokio::time::timeout(DEADLINE, call)
            .await
            .expect("stream finishes")
            .expect("join")
            .expect("response");
        assert_eq!(status, 200);
    }
    assert_eq!(upstream.peak.load(Ordering::SeqCst), 2);
    sidecar.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_with_408_and_an_error_span() {
    let upstream = GatedUpstream::start().await;
    let collector = FakeCollector::start().await;
    let inbound = "  timeouts:\n    request_body: 300ms\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let mut stream = TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    eventually("the upstream saw the upload fail", || {
        upstream.bodies.lock().expect("lock").len() == 1
    })
    .await;
    let bodies = upstream.bodies.lock().expect("lock").clone();
    assert!(
        bodies[0].is_err(),
        "upstream got a complete body: {bodies:?}"
    );
    let spans = collector.wait_for(1).await;
    let tags = &spans[0]["tags"];
    assert_eq!(tags["http.response.status_code"], "408");
    let error = tags["error"].as_str().expect("error tag");
    assert!(error.contains("request body stalled"), "{error}");
    sidecar.stop().await;
}

/// Accepts connections and never answers; holds them until aborted.
async fn hanging_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (listener, addr) = bind().await;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, holder)
}

#[tokio::test]
async fn outbound_routes_and_the_forward_proxy_use_their_own_timeouts_and_limits() {
    let (hang, holder) = hanging_upstream().await;
    let (upstream, collector) = (FakeUpstream::start().await, FakeCollector::start().await);
    // Long everywhere except where a listener sets its own: a listener
    // that borrowed inbound's or outbound's values would wait for a minute.
    let other = format!(
        "outbound:\n  timeouts: {{upstream_response: 60s}}\n  routes:\n\
         \x20   - name: slow\n      listen: 127.0.0.1:0\n      upstream: http://{hang}\n\
         \x20     timeouts: {{upstream_response: 200ms}}\n\
         \x20   - name: strict\n      listen: 127.0.0.1:0\n      upstream: http://{up}\n\
         \x20     limits: {{max_header_bytes: 8192}}\n\
         \x20 forward_proxy:\n    listen: 127.0.0.1:0\n    allow: [\"{hang}\"]\n\
         \x20   timeouts: {{upstream_response: 200ms}}\n",
        up = upstream.addr,
    );
    let yaml = Yaml {
        inbound: "  timeouts:\n    upstream_response: 60s\n",
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let route = |name: &str| {
        let (_, addr) = sidecar
            .running
            .outbound_addrs
            .iter()
            .find(|(route, _)| &**route == name)
            .expect("route bound");
        *addr
    };

    // The slow route's own upstream_response.
    let mut stream = TcpStream::connect(route("slow")).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: remote\r\n\r\n")
        .await
        .expect("write");
    assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 504"));

    // The forward proxy's own upstream_response.
    let proxy = sidecar.running.forward_proxy_addr.expect("forward proxy");
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    let request = format!("GET http://{hang}/ HTTP/1.1\r\nHost: {hang}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 504"));

    // The strict route's own header limit; inbound keeps its 64 KiB.
    let header = "a".repeat(32 * 1024);
    let request = format!("GET /big HTTP/1.1\r\nHost: remote\r\nX-Big: {header}\r\n\r\n");
    let mut stream = TcpStream::connect(route("strict")).await.expect("connect");
    // The sidecar may close before reading everything: ignore write errors.
    let _ = stream.write_all(request.as_bytes()).await;
    let (read, _) = read_until_closed(&mut stream).await;
    assert!(read.starts_with("HTTP/1.1 431"), "{read}");
    let reply = Client::http1()
        .get(&format!("{}/big", sidecar.base), &[("x-big", &header)])
        .await;
    assert_eq!(reply.status, 200);

    sidecar.stop().await;
    holder.abort();
}
