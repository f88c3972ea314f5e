//! For the `http1_responses` target: the upstream that plays an answer,
//! and the two clients that read it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, header};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tracehop::http1::client::{Connection, Home, exchange};
use tracehop::http1::semantics::MAX_RESPONSE_HEAD;

use super::{Outcome, Shown};

/// The body a `POST` sends.
const UPLOAD: &[u8] = b"hello";

/// How long the upstream waits, in the paused clock, before closing: it
/// wakes only once the client can make no more progress.
const SETTLE: Duration = Duration::from_millis(10);

/// Runs one client against the upstream playing `answer`.
pub async fn exchange_with<C, F>(method: &Method, answer: &[u8], client: C) -> Outcome
where
    C: FnOnce(DuplexStream, Request<Full<Bytes>>) -> F,
    F: Future<Output = Outcome>,
{
    let (near, far) = tokio::io::duplex(64 * 1024);
    let upload = match *method {
        Method::POST => Bytes::from_static(UPLOAD),
        _ => Bytes::new(),
    };
    let request = Request::builder()
        .method(method.clone())
        .uri("/")
        .header(header::HOST, "upstream")
        .body(Full::new(upload))
        .expect("a valid request");
    let (outcome, ()) = tokio::join!(client(near, request), upstream(far, method, answer));
    outcome
}

/// The upstream: reads the request, writes `answer`, closes once the
/// client is stuck, then reads until the client closes too.
async fn upstream(mut io: DuplexStream, method: &Method, answer: &[u8]) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !whole_request(&request, method) {
        match io.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = io.write_all(answer).await;
    tokio::time::sleep(SETTLE).await;
    let _ = io.shutdown().await;
    let _ = io.read_to_end(&mut request).await;
}

/// Whether `request` holds a whole head and, for `POST`, its body.
fn whole_request(request: &[u8], method: &Method) -> bool {
    let Some(head) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let body = if *method == Method::POST {
        UPLOAD.len()
    } else {
        0
    };
    request.len() >= head + 4 + body
}

/// Keeps the connection a body gives back.
#[derive(Clone, Default)]
struct Shelf(Arc<Mutex<Option<Box<Connection>>>>);

impl Home for Shelf {
    fn release(self, connection: Box<Connection>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection);
    }
}

/// tracehop's client: the exchange, then the body to its end.
pub async fn tracehop_reads(io: DuplexStream, request: Request<Full<Bytes>>) -> Outcome {
    let (parts, mut body) = request.into_parts();
    let connection = Box::new(Connection::over_stream(io));
    let Ok(mut response) = exchange::<_, Shelf>(connection, &parts, &[], &mut body).await else {
        return Outcome::Failed;
    };
    let shelf = Shelf::default();
    response.body_mut().set_home(shelf.clone());
    let status = response.status().as_u16();
    let (body, trailers, clean) = read_body(response.into_body()).await;
    let reusable = shelf
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .is_some();
    Outcome::Response {
        status,
        body,
        trailers,
        clean,
        reusable,
    }
}

/// hyper's client: the exchange on a connection driven alongside, the
/// body to its end, then whether another request could follow.
pub async fn hyper_reads(io: DuplexStream, request: Request<Full<Bytes>>) -> Outcome {
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(io))
        .await;
    let Ok((mut sender, connection)) = handshake else {
        return Outcome::Failed;
    };
    let exchange = async move {
        let Ok(response) = sender.send_request(request).await else {
            return Outcome::Failed;
        };
        let status = response.status().as_u16();
        let (body, trailers, clean) = read_body(response.into_body()).await;
        // Once the connection has done what it does after a body (waits
        // for the next request, or closes), and before the upstream closes.
        tokio::time::sleep(SETTLE / 10).await;
        let reusable = !sender.is_closed() && sender.is_ready();
        Outcome::Response {
            status,
            body,
            trailers,
            clean,
            reusable,
        }
    };
    let (outcome, _) = tokio::join!(exchange, connection);
    outcome
}

/// A response body read to its end: the data, the trailers, and whether
/// it ended cleanly.
async fn read_body<B: Body<Data = Bytes> + Unpin>(mut body: B) -> (Shown, HeaderMap, bool) {
    let mut data = BytesMut::new();
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (Shown(data.freeze()), trailers, false);
        };
        match frame.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => trailers.extend(frame.into_trailers().unwrap_or_default()),
        }
    }
    (Shown(data.freeze()), trailers, true)
}
