use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::Context;

use http::Request;
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::http1::client_body::{Chunk, Decoded, decode_chunked};
use crate::http1::{BoxError, ResponseFields};
use crate::tls::connector::MaybeTls;

/// Keeps the connection a body gives back.
#[derive(Clone, Default)]
struct Shelf(Arc<Mutex<Option<Box<Connection>>>>);

impl Home for Shelf {
    fn release(self, connection: Box<Connection>) {
        *self.0.lock().unwrap() = Some(connection);
    }
}

impl Shelf {
    fn take(&self) -> Option<Box<Connection>> {
        self.0.lock().unwrap().take()
    }
}

/// One upstream connection: for each scripted answer, reads a whole
/// request (reported on the channel), then writes the answer; closes
/// after the last one.
async fn upstream(
    answers: Vec<&'static [u8]>,
) -> (Box<Connection>, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        for answer in answers {
            let request = read_request(&mut socket, &mut buf).await;
            let _ = seen.send(request);
            socket.write_all(answer).await.unwrap();
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    (
        Box::new(Connection::new(MaybeTls::Plain(TokioIo::new(tcp)))),
        requests,
    )
}

/// A request off `socket`: the head, then a Content-Length or chunked body.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    let complete = |buf: &[u8]| {
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
        let length = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|n| n.trim().parse::<usize>().unwrap());
        match length {
            Some(n) => (buf.len() >= head + n).then_some(head + n),
            None if text.contains("transfer-encoding: chunked") => buf[head..]
                .windows(5)
                .position(|w| w == b"0\r\n\r\n")
                .map(|end| head + end + 5),
            None => Some(head),
        }
    };
    loop {
        if let Some(end) = complete(buf) {
            return buf.drain(..end).collect();
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "request incomplete: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A body of unknown length.
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
    }
}

/// A body of known length in several frames.
struct SizedFrames(Frames, u64);

impl Body for SizedFrames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.1)
    }
}

fn get(method: Method) -> (Parts, Empty<Bytes>) {
    let request = Request::builder()
        .method(method)
        .uri("/path?q=1")
        .header(header::HOST, "upstream")
        .body(Empty::new())
        .unwrap();
    request.into_parts()
}

async fn send<B>(
    connection: Box<Connection>,
    parts: &Parts,
    body: &mut B,
    shelf: &Shelf,
) -> Result<Response<Http1Body<Shelf>>, ExchangeError<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut response = exchange(connection, parts, &[], body).await?;
    response.body_mut().set_home(shelf.clone());
    Ok(response)
}

async fn text(response: Response<Http1Body<Shelf>>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_sized_response_is_read_and_the_connection_reused() {
    let (connection, mut requests) = upstream(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\nConnection: keep-alive\r\n\
          Keep-Alive: timeout=5\r\n\r\nhello",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno",
    ])
    .await;
    let shelf = Shelf::default();
    let (parts, mut body) = get(Method::GET);
    let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The fields travel as lines; those about this connection stay here,
    // and the length goes apart (the server frames the body).
    assert!(response.headers().is_empty());
    let raw = response.body().fields().expect("raw fields");
    assert_eq!(raw.lines(), b"X-Up: 1\r\n");
    assert_eq!(raw.content_length, Some(5));
    assert_eq!(response.body().size_hint().exact(), Some(5));
    assert_eq!(text(response).await, "hello");
    assert_eq!(
        requests.recv().await.unwrap(),
        b"GET /path?q=1 HTTP/1.1\r\nhost: upstream\r\n\r\n"
    );
    let again = shelf.take().expect("the connection came back");
    // Between exchanges it holds no buffers (an idle connection is cheap).
    assert_eq!(again.read.capacity() + again.write.capacity(), 0);
    assert_eq!(again.fields.capacity(), 0);
    let response = send(again, &parts, &mut body, &shelf).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(text(response).await, "no");
    assert!(shelf.take().is_some());
}

#[tokio::test]
async fn a_chunked_response_is_decoded_with_its_trailers() {
    let (connection, _requests) = upstream(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\ngrpc-status: 0\r\n\r\n",
    ])
    .await;
    let shelf = Shelf::default();
    let (parts, mut body) = get(Method::GET);
    let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the 100 was skipped");
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "hello, world");
    assert!(shelf.take().is_some(), "a chunked body ends cleanly");
}

#[tokio::test]
async fn bodiless_responses_give_the_connection_back_at_once() {
    let (connection, _requests) = upstream(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ])
    .await;
    let shelf = Shelf::default();
    let (parts, mut body) = get(Method::HEAD);
    let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
    let raw = response.body().fields().expect("raw fields");
    assert_eq!(
        raw.content_length,
        Some(10),
        "HEAD keeps the declared length"
    );
    assert!(response.body().is_end_stream());
    // hyper never polls an empty body: the connection is back already.
    let again = shelf.take().expect("returned without a poll");
    let (parts, mut body) = get(Method::DELETE);
    let response = send(again, &parts, &mut body, &shelf).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.body().is_end_stream());
    assert!(shelf.take().is_some());
}

#[tokio::test]
async fn a_response_to_the_end_of_the_connection_is_not_reused() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\n\r\nuntil the end"[..],
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nuntil the end",
        b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nuntil the end",
    ] {
        let (connection, _requests) = upstream(vec![answer]).await;
        let shelf = Shelf::default();
        let (parts, mut body) = get(Method::GET);
        let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
        assert_eq!(text(response).await, "until the end");
        assert!(
            shelf.take().is_none(),
            "{}",
            String::from_utf8_lossy(answer)
        );
    }
}

#[tokio::test]
async fn request_bodies_go_out_sized_or_chunked() {
    let ok = &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..];
    let (connection, mut requests) = upstream(vec![ok, ok]).await;
    let shelf = Shelf::default();
    let (parts, _) = Request::post("/up")
        .header(header::HOST, "upstream")
        .header(header::CONTENT_LENGTH, "999")
        .body(())
        .unwrap()
        .into_parts();
    let mut sized = Full::new(Bytes::from_static(b"abc"));
    send(connection, &parts, &mut sized, &shelf).await.unwrap();
    assert_eq!(
        requests.recv().await.unwrap(),
        b"POST /up HTTP/1.1\r\nhost: upstream\r\ncontent-length: 3\r\n\r\nabc",
        "the body's own length replaces the header"
    );
    let mut streamed = Frames(["ab", "", "cde"].map(Bytes::from).into());
    let again = shelf.take().unwrap();
    send(again, &parts, &mut streamed, &shelf).await.unwrap();
    assert_eq!(
        requests.recv().await.unwrap(),
        b"POST /up HTTP/1.1\r\nhost: upstream\r\ntransfer-encoding: chunked\r\n\r\n\
          2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    );
}

/// Sized bodies go out uncopied behind the head: frames larger than the
/// socket takes at once are written in parts, each byte once, in order.
#[tokio::test]
async fn a_large_sized_body_in_several_frames_arrives_whole() {
    let ok = &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..];
    let (connection, mut requests) = upstream(vec![ok]).await;
    let shelf = Shelf::default();
    let (parts, _) = Request::put("/big")
        .header(header::HOST, "upstream")
        .body(())
        .unwrap()
        .into_parts();
    let frames: Vec<Bytes> = (0..4u8)
        .map(|i| Bytes::from(vec![b'a' + i; 300_000 + usize::from(i)]))
        .collect();
    let expected: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let length = expected.len() as u64;
    let mut body = SizedFrames(Frames(frames.into()), length);
    let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request = requests.recv().await.unwrap();
    let head = format!("PUT /big HTTP/1.1\r\nhost: upstream\r\ncontent-length: {length}\r\n\r\n");
    assert_eq!(String::from_utf8_lossy(&request[..head.len()]), head);
    assert!(request[head.len()..] == expected[..], "body differs");
    text(response).await;
    assert!(shelf.take().is_some(), "reusable after a whole upload");
}

#[tokio::test]
async fn a_large_response_body_comes_in_reads_larger_than_the_head_s() {
    let body: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    // The whole response waits in the stream before the exchange starts,
    // so each read takes as much as the buffer has room for.
    let (near, mut far) = tokio::io::duplex(1 << 20);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    far.write_all(head.as_bytes()).await.unwrap();
    far.write_all(&body).await.unwrap();
    let shelf = Shelf::default();
    let (parts, mut empty) = get(Method::GET);
    let connection = Box::new(Connection::over_stream(near));
    let mut response = send(connection, &parts, &mut empty, &shelf).await.unwrap();
    let (mut got, mut sizes) = (Vec::new(), Vec::new());
    while let Some(frame) = response.body_mut().frame().await {
        let data = frame.unwrap().into_data().unwrap();
        sizes.push(data.len());
        got.extend_from_slice(&data);
    }
    assert!(got == body, "the body arrives whole and in order");
    // 8 KiB reads would take 25; reads of 64 KiB take five at most.
    assert!(sizes.len() <= 5, "{sizes:?}");
    assert!(sizes[1] > crate::http1::buffers::READ, "{sizes:?}");
    assert!(shelf.take().is_some(), "the connection comes back");
}

#[tokio::test]
async fn added_fields_follow_the_request_s_own() {
    let (connection, mut requests) =
        upstream(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
    let (parts, mut body) = get(Method::GET);
    let name = HeaderName::from_static("traceparent");
    let added = [(&name, HeaderValue::from_static("00-1-2-01"))];
    exchange::<_, Shelf>(connection, &parts, &added, &mut body)
        .await
        .unwrap();
    assert_eq!(
        requests.recv().await.unwrap(),
        b"GET /path?q=1 HTTP/1.1\r\nhost: upstream\r\ntraceparent: 00-1-2-01\r\n\r\n"
    );
}

#[tokio::test]
async fn a_connection_closed_before_responding_may_be_retried() {
    let (connection, _requests) = upstream(vec![b""]).await;
    let (parts, mut body) = get(Method::GET);
    let error = exchange::<_, Shelf>(connection, &parts, &[], &mut body)
        .await
        .unwrap_err();
    assert!(error.retryable);
    assert!(error.to_string().contains("before responding"), "{error}");
}

#[tokio::test]
async fn bad_responses_are_errors_not_panics() {
    for (answer, expected) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"[..],
            "Content-Length values disagree",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "Content-Length",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.0",
        ),
        (b"NOT HTTP\r\n\r\n", "invalid response head"),
    ] {
        let (connection, _requests) = upstream(vec![answer]).await;
        let (parts, mut body) = get(Method::GET);
        let error = exchange::<_, Shelf>(connection, &parts, &[], &mut body)
            .await
            .unwrap_err();
        assert!(!error.retryable);
        assert!(error.to_string().contains(expected), "{error}");
    }
    for (answer, expected) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            "chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
            "CRLF",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            "before the response body ended",
        ),
    ] {
        let (connection, _requests) = upstream(vec![answer]).await;
        let shelf = Shelf::default();
        let (parts, mut body) = get(Method::GET);
        let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
        let error = response.into_body().collect().await.unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
        assert!(shelf.take().is_none(), "a broken connection is not reused");
    }
}

#[tokio::test]
async fn hop_by_hop_fields_never_travel_as_lines() {
    let (connection, _requests) = upstream(vec![
        b"HTTP/1.1 200 OK\r\nServer: app\r\nUpgrade: h2c\r\nTrailer: x-sum\r\n\
          Proxy-Authenticate: Basic\r\nTE: trailers\r\nDate: today\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nX-End: 2\r\n\
          Content-Length: 0\r\n\r\n",
    ])
    .await;
    let shelf = Shelf::default();
    let (parts, mut body) = get(Method::GET);
    let response = send(connection, &parts, &mut body, &shelf).await.unwrap();
    let raw = response.body().fields().expect("raw fields");
    // `Trailer` is end to end (RFC 9110 §6.6.2).
    assert_eq!(
        raw.lines(),
        b"Server: app\r\nTrailer: x-sum\r\nDate: today\r\n"
    );
    assert!(raw.date);
    assert_eq!(raw.content_length, None, "chunked: no length to pass on");
    assert_eq!(text(response).await, "");
    // A `Connection` naming fields: those go too, the rest stay lines.
    let again = shelf.take().expect("reused");
    let response = send(again, &parts, &mut body, &shelf).await.unwrap();
    let raw = response.body().fields().expect("raw fields");
    assert_eq!(raw.lines(), b"X-End: 2\r\n");
    assert_eq!(raw.content_length, Some(0));
    assert!(response.headers().is_empty());
}

/// Runs the chunked decoder over `read` as the body would, to the end
/// or the first error or shortage.
fn decode_all(mut read: BytesMut) {
    let mut chunk = Chunk::Size;
    for _ in 0..1024 {
        if let Chunk::Data(left) = chunk {
            let take = read.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            if take == 0 {
                return;
            }
            read.advance(take);
            let left = left - take as u64;
            chunk = if left == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data(left)
            };
            continue;
        }
        match decode_chunked(&mut read, chunk) {
            Ok(Decoded::Next(next)) => chunk = next,
            _ => return,
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_upstream_bytes_are_an_answer_or_an_error_never_a_panic(
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        prefix in 0usize..3,
    ) {
        let prefix: &[u8] = [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ][prefix];
        let bytes = [prefix, &tail].concat();
        let mut read = BytesMut::from(&bytes[..]);
        let _ = parse_head(&mut read, &mut Vec::new(), &Method::GET, tail.len() % 2 == 0);
        decode_all(read);
        decode_all(BytesMut::from(&tail[..]));
    }
}
