use std::sync::{Arc, Mutex};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio::sync::oneshot;

use http::StatusCode;
use http::header::{self, HeaderValue};

use super::*;
use crate::http1::RawFields;
use crate::http1::path::Fallback;
use crate::http1::response::http_date;
use crate::http1::semantics::{self, MAX_FIELDS};

/// A boxed body that may carry its response's fields as lines.
struct TestBody {
    inner: BoxBody<Bytes, BoxError>,
    fields: Option<RawFields>,
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl ResponseFields for TestBody {
    fn take_fields(&mut self) -> Option<RawFields> {
        self.fields.take()
    }
}

fn test_body(inner: impl Body<Data = Bytes, Error = BoxError> + Send + Sync + 'static) -> TestBody {
    TestBody {
        inner: inner.boxed(),
        fields: None,
    }
}

fn empty() -> TestBody {
    test_body(Empty::new().map_err(|never| match never {}))
}

/// Waits with `head` for heads and five seconds for bodies.
fn waits(head: Option<Duration>) -> Waits {
    Waits {
        head,
        body: Duration::from_secs(5),
        park: None,
    }
}

/// The connection's context, passed to the handler (the server passes
/// its connection facts).
fn info() {}

fn full(text: &'static str) -> TestBody {
    test_body(Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {}))
}

/// A body of unknown length: its chunks, one frame each.
struct Chunks(std::collections::VecDeque<&'static str>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let chunk = self.0.pop_front();
        Poll::Ready(chunk.map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes())))))
    }
}

fn streamed(chunks: &[&'static str]) -> TestBody {
    test_body(Chunks(chunks.iter().copied().collect()))
}

/// What the handler saw of each request: `METHOD target body`, and the
/// value of `x-seen` when present.
type Seen = Arc<Mutex<Vec<String>>>;

/// Echoes each request's method, target and body into `seen`, answering
/// with `reply` (called with the request's target).
fn recording(
    seen: &Seen,
    reply: fn(&str) -> Response<TestBody>,
) -> impl Fn(Request<RequestBody>, ()) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>> + use<>
{
    let seen = seen.clone();
    move |request, _| {
        let seen = seen.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            let mut line = format!(
                "{} {} {}",
                parts.method,
                parts.uri,
                String::from_utf8_lossy(&body)
            );
            if let Some(v) = parts.headers.get("x-seen") {
                line.push_str(&format!(" x-seen={}", v.to_str().unwrap_or("?")));
            }
            seen.lock().expect("lock").push(line);
            reply(parts.uri.path())
        })
    }
}

fn ok(_: &str) -> Response<TestBody> {
    Response::new(full("hello"))
}

/// Sends `input`, stops sending, serves until the connection ends: what
/// the client received, and on a handover every byte hyper would read.
async fn run<H, F, B>(input: &[u8], handler: H) -> (String, Option<(Vec<u8>, Fallback)>)
where
    H: Fn(Request<RequestBody>, ()) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + ResponseFields,
    B::Error: Into<BoxError>,
{
    let (mut client, server) = duplex(1 << 20);
    client.write_all(input).await.expect("write");
    client.shutdown().await.expect("shutdown");
    let (_drain, draining) = watch::channel(());
    let ended = serve(
        server,
        &(),
        &handler,
        waits(Some(Duration::from_secs(5))),
        &draining,
        true,
    )
    .await;
    let handed = match ended {
        Ended::Closed => None,
        Ended::Idle { .. } => panic!("parked with no park wait"),
        Ended::Handover(mut io, fallback) => {
            let mut rest = Vec::new();
            io.read_to_end(&mut rest).await.expect("read handover");
            Some((rest, fallback))
        }
    };
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.expect("read");
    (String::from_utf8_lossy(&received).into_owned(), handed)
}

/// The response heads and bodies in `received`, without the `date` line.
fn without_dates(received: &str) -> String {
    received
        .split("\r\n")
        .filter(|line| !line.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_their_bodies() {
    let seen = Seen::default();
    let input = b"GET /a?x=1 HTTP/1.1\r\nHost: app\r\nX-Seen: one\r\n\r\n\
        POST /b HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello\
        GET /c HTTP/1.1\r\nHost: app\r\n\r\n";
    let (received, handed) = run(input, recording(&seen, ok)).await;
    assert!(handed.is_none(), "every request was plain");
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /a?x=1  x-seen=one", "POST /b hello", "GET /c "]
    );
    let one = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    assert_eq!(without_dates(&received), one.repeat(3));
    assert_eq!(received.matches("\r\ndate: ").count(), 3, "{received}");
}

#[tokio::test]
async fn requests_hyper_must_answer_are_handed_over_with_every_byte() {
    let cases: [(&[u8], Fallback); 8] = [
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Fallback::Http2),
        (b"GET / HTTP/1.0\r\n\r\n", Fallback::Http10),
        (b"CONNECT app:443 HTTP/1.1\r\nHost: app:443\r\n\r\n", Fallback::Connect),
        (
            b"GET / HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            Fallback::Upgrade,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n",
            Fallback::Expect,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            Fallback::Chunked,
        ),
        (b"GET / HTTP/1.1\r\nHost: app\r\nTE: trailers\r\n\r\n", Fallback::Trailers),
        (
            b"POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 70000\r\n\r\nonly5",
            Fallback::StreamedBody,
        ),
    ];
    for (input, expected) in cases {
        let seen = Seen::default();
        let (received, handed) = run(input, recording(&seen, ok)).await;
        let shown = String::from_utf8_lossy(input);
        let (handed, fallback) = handed.unwrap_or_else(|| panic!("{shown}: not handed over"));
        assert_eq!(handed, input, "{shown}");
        assert_eq!(fallback, expected, "{shown}");
        assert!(received.is_empty(), "{shown}: answered {received}");
        assert!(seen.lock().unwrap().is_empty(), "{shown}");
    }
}

#[tokio::test]
async fn heads_that_break_the_rules_are_refused_here() {
    let cases: [(&[u8], &str); 14] = [
        // Refused at once, not after waiting for (or asking for) the body.
        (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", "400"),
        (
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            "400",
        ),
        (b"GET /\x01 HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "400"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\nx",
            "400",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "400",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "400",
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400",
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", "400"),
    ];
    for (input, status) in cases {
        let seen = Seen::default();
        let (received, handed) = run(input, recording(&seen, ok)).await;
        let shown = String::from_utf8_lossy(input);
        assert!(handed.is_none(), "{shown}: handed over");
        assert!(
            received.starts_with(&format!("HTTP/1.1 {status} ")),
            "{shown}: answered {received}"
        );
        assert!(received.contains("connection: close\r\n"), "{shown}");
        assert!(!received.contains("100 Continue"), "{shown}: {received}");
        assert!(seen.lock().unwrap().is_empty(), "{shown}");
    }
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..MAX_FIELDS {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let (received, _) = run(&many, recording(&Seen::default(), ok)).await;
    assert!(received.starts_with("HTTP/1.1 431 "), "{received}");
}

#[tokio::test]
async fn the_http2_preface_counts_only_as_a_connection_s_first_bytes() {
    let seen = Seen::default();
    let mut input = b"GET /a HTTP/1.1\r\nHost: app\r\n\r\n".to_vec();
    input.extend_from_slice(semantics::HTTP2_PREFACE);
    let (received, handed) = run(&input, recording(&seen, ok)).await;
    assert!(
        handed.is_none(),
        "not handed to HTTP/2 after an HTTP/1.1 request"
    );
    assert_eq!(*seen.lock().unwrap(), ["GET /a "]);
    let second = received
        .find("HTTP/1.1 400 ")
        .expect("the preface is refused");
    assert!(
        received[..second].starts_with("HTTP/1.1 200 OK\r\n"),
        "{received}"
    );
}

#[tokio::test]
async fn later_minor_versions_are_served_as_http_1_1_and_absolute_targets_set_host() {
    let seen = Seen::default();
    let input = b"GET /a HTTP/1.2\r\nHost: app\r\n\r\n\
        GET http://other.example:8080/b HTTP/1.1\r\nHost: app\r\nX-Seen: x\r\n\r\n";
    let handler = {
        let seen = seen.clone();
        move |request: Request<RequestBody>, _: ()| {
            let host = request.headers()[header::HOST].to_str().unwrap().to_owned();
            seen.lock()
                .unwrap()
                .push(format!("{} {}", request.uri(), host));
            async { Response::new(full("ok")) }
        }
    };
    let (received, handed) = run(input, handler).await;
    assert!(handed.is_none());
    assert_eq!(
        received.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{received}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["/a app", "http://other.example:8080/b other.example:8080"]
    );
}

#[tokio::test]
async fn identical_lengths_are_one_length_and_te_with_length_closes_after() {
    let seen = Seen::default();
    let input = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    let (received, handed) = run(input, recording(&seen, ok)).await;
    assert!(handed.is_none());
    assert_eq!(*seen.lock().unwrap(), ["POST /a x"]);
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
}

#[tokio::test]
async fn a_handover_after_plain_requests_starts_at_the_first_other_request() {
    let seen = Seen::default();
    let upgrade =
        b"GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let mut input = b"GET /a HTTP/1.1\r\nHost: app\r\n\r\n".to_vec();
    input.extend_from_slice(upgrade);
    let (received, handed) = run(&input, recording(&seen, ok)).await;
    assert_eq!(*seen.lock().unwrap(), ["GET /a "]);
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    let (handed, fallback) = handed.expect("handed over");
    assert_eq!(handed, upgrade);
    assert_eq!(fallback, Fallback::Upgrade);
}

#[tokio::test]
async fn a_head_too_large_for_the_buffer_is_handed_over() {
    let mut input = b"GET / HTTP/1.1\r\nHost: app\r\nX-Big: ".to_vec();
    input.resize(READ_BUFFER + 100, b'a');
    input.extend_from_slice(b"\r\n\r\n");
    let (_, handed) = run(&input, recording(&Seen::default(), ok)).await;
    let (handed, fallback) = handed.expect("handed over");
    assert_eq!(handed, input);
    assert_eq!(fallback, Fallback::LargeHead);
}

#[tokio::test]
async fn responses_are_framed_as_hyper_frames_them() {
    fn reply(path: &str) -> Response<TestBody> {
        let mut response = match path {
            "/stream" => Response::new(streamed(&["ab", "", "cde"])),
            "/declared" => {
                let mut r = Response::new(streamed(&["12", "345"]));
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
                r
            }
            "/empty" => Response::new(empty()),
            "/204" => {
                let mut r = Response::new(full(""));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            "/teapot" => {
                let mut r = Response::new(full("short"));
                *r.status_mut() = StatusCode::IM_A_TEAPOT;
                r
            }
            _ => Response::new(full("hello")),
        };
        response
            .headers_mut()
            .insert(header::DATE, HeaderValue::from_static("then"));
        response
    }
    let cases = [
        (
            "GET /stream",
            "HTTP/1.1 200 OK\r\ndate: then\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
        ),
        (
            "GET /declared",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: then\r\n\r\n12345",
        ),
        (
            "GET /empty",
            "HTTP/1.1 200 OK\r\ndate: then\r\ncontent-length: 0\r\n\r\n",
        ),
        ("GET /204", "HTTP/1.1 204 No Content\r\ndate: then\r\n\r\n"),
        (
            "GET /teapot",
            "HTTP/1.1 418 I'm a teapot\r\ndate: then\r\ncontent-length: 5\r\n\r\nshort",
        ),
        (
            "HEAD /plain",
            "HTTP/1.1 200 OK\r\ndate: then\r\ncontent-length: 5\r\n\r\n",
        ),
        ("HEAD /stream", "HTTP/1.1 200 OK\r\ndate: then\r\n\r\n"),
    ];
    for (request, expected) in cases {
        let input = format!("{request} HTTP/1.1\r\nHost: app\r\n\r\n");
        let (received, handed) = run(input.as_bytes(), recording(&Seen::default(), reply)).await;
        assert!(handed.is_none());
        assert_eq!(received, expected, "{request}");
    }
}

#[tokio::test]
async fn raw_fields_are_written_as_they_came_after_the_map_s_own() {
    fn reply(path: &str) -> Response<TestBody> {
        let mut raw = RawFields::with_capacity(64);
        raw.push(b"Server", b"app");
        raw.push(b"Date", b"then");
        raw.content_length = Some(5);
        let mut body = match path {
            "/head" => empty(),
            _ => full("hello"),
        };
        body.fields = Some(raw);
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert("x-map", HeaderValue::from_static("1"));
        response
    }
    let fields = "x-map: 1\r\nServer: app\r\nDate: then\r\ncontent-length: 5\r\n\r\n";
    for (request, body) in [("GET /get", "hello"), ("HEAD /head", "")] {
        let input = format!("{request} HTTP/1.1\r\nHost: app\r\n\r\n");
        let (received, _) = run(input.as_bytes(), recording(&Seen::default(), reply)).await;
        assert_eq!(
            received,
            format!("HTTP/1.1 200 OK\r\n{fields}{body}"),
            "{request}"
        );
    }
}

#[tokio::test]
async fn connection_close_is_answered_then_the_connection_closes() {
    let seen = Seen::default();
    let input = b"GET /a HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n\
        GET /never HTTP/1.1\r\nHost: app\r\n\r\n";
    let (received, handed) = run(input, recording(&seen, ok)).await;
    assert!(handed.is_none());
    assert_eq!(*seen.lock().unwrap(), ["GET /a "]);
    assert!(received.contains("\r\nconnection: close\r\n"), "{received}");
    assert_eq!(received.matches("HTTP/1.1").count(), 1, "{received}");
}

#[tokio::test]
async fn a_body_longer_than_declared_is_cut_and_the_connection_closed() {
    fn reply(_: &str) -> Response<TestBody> {
        let mut r = Response::new(streamed(&["1234", "5678"]));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        r
    }
    let seen = Seen::default();
    let input = b"GET /a HTTP/1.1\r\nHost: app\r\n\r\nGET /b HTTP/1.1\r\nHost: app\r\n\r\n";
    let (received, _) = run(input, recording(&seen, reply)).await;
    assert!(received.ends_with("\r\n\r\n123456"), "{received}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no second request on a broken connection"
    );
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_response() {
    // `run` shuts the client's sending side down right after the request.
    let handler = |_: Request<RequestBody>, _: ()| async {
        // The client's half-close is already queued: answer after it is read.
        tokio::task::yield_now().await;
        Response::new(full("late"))
    };
    let (received, handed) = run(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n", handler).await;
    assert!(handed.is_none());
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(received.contains("connection: close\r\n"), "{received}");
    assert!(received.ends_with("late"), "{received}");
}

#[tokio::test(start_paused = true)]
async fn a_head_that_does_not_arrive_in_time_closes_the_connection() {
    let (mut client, server) = duplex(4096);
    let (_drain, draining) = watch::channel(());
    let seen = Seen::default();
    let handler = recording(&seen, ok);
    let started = Instant::now();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\nGET / HTTP/1.1\r\nX-Slow:")
        .await
        .expect("write");
    let wait = Duration::from_secs(3);
    let ended = serve(
        server,
        &info(),
        &handler,
        waits(Some(wait)),
        &draining,
        true,
    )
    .await;
    assert!(matches!(ended, Ended::Closed));
    assert_eq!(seen.lock().unwrap().len(), 1);
    let took = started.elapsed();
    assert!(took >= wait && took < wait * 2, "{took:?}");
    let mut received = String::new();
    client.read_to_string(&mut received).await.expect("read");
    assert_eq!(received.matches("HTTP/1.1 200").count(), 1);
}

#[tokio::test]
async fn shutdown_closes_an_idle_connection_and_ends_the_one_in_progress() {
    let (_client, server) = duplex(4096);
    let (drain, draining) = watch::channel(());
    let handler = recording(&Seen::default(), ok);
    let serving = serve(server, &(), &handler, waits(None), &draining, true);
    drain.send(()).expect("send");
    assert!(matches!(serving.await, Ended::Closed));

    // Shutdown while a request is in flight: it is answered, with close.
    let (mut client, server) = duplex(4096);
    let (drain, draining) = watch::channel(());
    let (release_tx, release) = oneshot::channel::<()>();
    let release = Mutex::new(Some(release));
    let handler = move |_: Request<RequestBody>, _: ()| {
        let release = release.lock().unwrap().take();
        async move {
            if let Some(release) = release {
                let _ = release.await;
            }
            Response::new(full("done"))
        }
    };
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .expect("write");
    let serving = serve(server, &(), &handler, waits(None), &draining, true);
    let answer = async {
        tokio::task::yield_now().await;
        drain.send(()).expect("send");
        release_tx.send(()).expect("release");
        let mut received = String::new();
        client.read_to_string(&mut received).await.expect("read");
        received
    };
    let (ended, received) = tokio::join!(serving, answer);
    assert!(matches!(ended, Ended::Closed));
    assert!(received.ends_with("\r\n\r\ndone"), "{received}");
    assert!(received.contains("\r\nconnection: close\r\n"), "{received}");
}

#[test]
fn dates_are_http_dates() {
    let mut out = Vec::new();
    http_date(&mut out);
    let text = String::from_utf8(out).expect("ascii");
    assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
}

#[tokio::test]
async fn a_body_that_fits_is_waited_for_after_100_continue() {
    let (mut client, server) = duplex(1 << 16);
    let seen = Seen::default();
    let handler = recording(&seen, ok);
    let (_drain, draining) = watch::channel(());
    let serving = tokio::spawn(async move {
        let ended = serve(
            server,
            &(),
            &handler,
            waits(Some(Duration::from_secs(5))),
            &draining,
            true,
        )
        .await;
        matches!(ended, Ended::Closed)
    });
    client
        .write_all(
            b"POST /up HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await
        .expect("write head");
    let mut interim = [0u8; 25];
    client.read_exact(&mut interim).await.expect("read 100");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"hel").await.expect("write");
    tokio::task::yield_now().await;
    client.write_all(b"lo").await.expect("write");
    // A second request whose body comes in a later write, without Expect.
    client
        .write_all(b"POST /two HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\n\r\n")
        .await
        .expect("write head");
    tokio::task::yield_now().await;
    client.write_all(b"abc").await.expect("write body");
    client.shutdown().await.expect("shutdown");
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.expect("read");
    let received = String::from_utf8_lossy(&received);
    assert_eq!(received.matches("HTTP/1.1 200 OK").count(), 2, "{received}");
    assert!(!received.contains("100 Continue"), "sent once: {received}");
    assert!(serving.await.expect("served"), "never handed to hyper");
    assert_eq!(*seen.lock().unwrap(), ["POST /up hello", "POST /two abc"]);
}

/// A head whose body has not started arriving is a request in progress:
/// the connection neither parks (its park wait passes) nor closes on
/// shutdown before the body comes and the response goes out.
#[tokio::test]
async fn a_request_awaiting_its_body_is_neither_parked_nor_dropped_on_shutdown() {
    let (mut client, server) = duplex(1 << 16);
    let seen = Seen::default();
    let handler = recording(&seen, ok);
    let (drain, draining) = watch::channel(());
    let waits = Waits {
        park: Some(Duration::from_millis(20)),
        ..waits(Some(Duration::from_secs(5)))
    };
    let serving =
        tokio::spawn(async move { serve(server, &(), &handler, waits, &draining, true).await });
    client
        .write_all(b"POST /late HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\n")
        .await
        .expect("write head");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain.send(()).expect("drain");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!serving.is_finished(), "stopped with a request in progress");
    client.write_all(b"hello").await.expect("write body");
    let mut received = String::new();
    client.read_to_string(&mut received).await.expect("read");
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(received.contains("\r\nconnection: close\r\n"), "{received}");
    assert!(matches!(serving.await.expect("served"), Ended::Closed));
    assert_eq!(*seen.lock().unwrap(), ["POST /late hello"]);
}

#[tokio::test]
async fn an_upload_larger_than_the_read_buffer_is_read_whole_and_served_here() {
    let (mut client, server) = duplex(1 << 16);
    let seen = Seen::default();
    let handler = recording(&seen, ok);
    let (_drain, draining) = watch::channel(());
    let serving = tokio::spawn(async move {
        let ended = serve(server, &(), &handler, waits(None), &draining, true).await;
        matches!(ended, Ended::Closed)
    });
    let body: String = (0..16 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert!(body.len() > READ_BUFFER && body.len() < MAX_BUFFERED_REQUEST);
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: app\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await.expect("write head");
    // The body comes in pieces, as from a socket.
    for piece in body.as_bytes().chunks(3000) {
        tokio::task::yield_now().await;
        client.write_all(piece).await.expect("write body");
    }
    client
        .write_all(b"GET /next HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .expect("write");
    client.shutdown().await.expect("shutdown");
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.expect("read");
    let received = String::from_utf8_lossy(&received);
    assert_eq!(received.matches("HTTP/1.1 200 OK").count(), 2, "{received}");
    assert!(serving.await.expect("served"), "handed to hyper");
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("POST /up {body}"), "GET /next ".to_string()]
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_come_goes_to_hyper_after_the_body_wait() {
    let (mut client, server) = duplex(1 << 16);
    let head = b"POST /up HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nhalf";
    client.write_all(head).await.expect("write");
    let (_drain, draining) = watch::channel(());
    let handler = recording(&Seen::default(), ok);
    let started = tokio::time::Instant::now();
    let waits = Waits {
        head: Some(Duration::from_secs(60)),
        body: Duration::from_secs(2),
        park: None,
    };
    let ended = serve(server, &(), &handler, waits, &draining, true).await;
    let Ended::Handover(mut io, fallback) = ended else {
        panic!("not handed over");
    };
    assert_eq!(fallback, Fallback::StreamedBody);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    drop(client);
    let mut handed = Vec::new();
    io.read_to_end(&mut handed).await.expect("read");
    assert_eq!(handed, head, "every byte goes to hyper");
}

#[tokio::test]
async fn a_request_hyper_will_serve_is_handed_over_before_any_100_continue() {
    let input = b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
        Expect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    let (received, handed) = run(input, recording(&Seen::default(), ok)).await;
    assert!(
        received.is_empty(),
        "hyper answers Expect itself: {received}"
    );
    let (handed, fallback) = handed.expect("handed over");
    assert_eq!(handed, input);
    assert_eq!(fallback, Fallback::Upgrade);
}

#[tokio::test]
async fn a_connection_waiting_for_its_next_request_holds_no_buffers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let mut conn = Direct::new(server, waits(None), true);
    let never = std::future::pending::<()>();
    let mut never = pin!(never);
    for path in ["/first", "/second"] {
        // Nothing sent yet: the wait holds no buffer.
        {
            let next = conn.next_request(never.as_mut());
            let mut next = pin!(next);
            let polled = poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx).is_pending())).await;
            assert!(polled, "a request was read before one was sent");
        }
        assert_eq!(conn.read.capacity(), 0, "read buffer held while idle");
        assert_eq!(conn.out.capacity(), 0, "write buffer held while idle");
        let head = format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n");
        client.write_all(head.as_bytes()).await.unwrap();
        let Ok((request, closing)) = conn.next_request(never.as_mut()).await else {
            panic!("no request read");
        };
        assert_eq!(request.uri().path(), path);
        assert!(!closing);
        assert!(conn.read.capacity() > 0 && conn.out.capacity() > 0);
    }
}
