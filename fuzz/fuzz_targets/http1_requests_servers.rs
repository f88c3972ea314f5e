//! For the `http1_requests` target: the two servers on one connection
//! each, the client that talks to them, and the handler that records what
//! they hand it.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, Join};
use tokio::sync::watch;
use tracehop::http1::RequestBody;
use tracehop::http1::path::{Fallback, ServedBy};
use tracehop::http1::server::{self as direct, Ended, Waits, check_hyper_request};
use tracehop::server::{Body, empty, text_response};

use super::{Answer, Delivery, Outcome, Seen};

/// tracehop's default header-read timeout (`ServerOptions`), which also
/// bounds the direct path's wait for a head.
const HEADER_READ: Duration = Duration::from_secs(10);

/// The direct path's waits, as `server::serve` sets them by default.
const WAITS: Waits = Waits {
    head: Some(HEADER_READ),
    body: Duration::from_secs(10),
    // Parking hands a TCP socket to the server's lot; a duplex stream
    // has none, and a fuzz input never waits that long.
    park: None,
};

/// The server's end of a connection: requests in, answers out.
type Connection = Join<DuplexStream, DuplexStream>;

/// The requests a handler saw, shared with the connection serving them.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<(Vec<Seen>, Vec<bool>)>>);

impl Recorder {
    fn push(&self, seen: Seen, direct: bool) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.0.push(seen);
        log.1.push(direct);
    }

    fn take(&self) -> (Vec<Seen>, Vec<bool>) {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The handler: records the request, answers 200 with no body.
async fn record(request: Request<RequestBody>, recorder: Recorder) -> Response<Body> {
    // A real handler waits on its upstream: the connection gets a turn to
    // read from its client meanwhile.
    tokio::task::yield_now().await;
    let direct = request.body().served_by() == ServedBy::Direct;
    let (parts, body) = request.into_parts();
    let body = body.collect().await.ok().map(|c| c.to_bytes());
    let hosts = parts.headers.get_all(header::HOST).iter();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        version: parts.version,
        hosts: hosts
            .map(|h| Bytes::copy_from_slice(h.as_bytes()))
            .collect(),
        body,
    };
    recorder.push(seen, direct);
    Response::new(empty())
}

/// The service hyper runs, as `server::Conn::drive` builds it: the rules
/// hyper does not enforce first, a refusal closing the connection.
fn service(
    recorder: Recorder,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future: Send + 'static,
> {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let served = ServedBy::Hyper(Fallback::Connection);
        let mut request = request.map(|body| RequestBody::streamed(body, served));
        let refused = check_hyper_request(&mut request).err();
        let recorder = recorder.clone();
        async move {
            let Some(status) = refused else {
                return Ok(record(request, recorder).await);
            };
            let mut response = text_response(status, "bad request\n");
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(header::CONNECTION, close);
            Ok(response)
        }
    })
}

/// tracehop's server on one connection, its client sending `data`.
pub async fn tracehop_serves(data: &[u8], delivery: Delivery) -> Outcome {
    converse(data, delivery, |io, recorder| async move {
        // Kept open for the whole connection: a dropped sender means shutdown.
        let (_drain, draining) = watch::channel(());
        let served = direct::serve(io, &recorder, &record, WAITS, &draining, true);
        if let Ended::Handover(io, _) = served.await {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(HEADER_READ))
                .half_close(true);
            builder.http2().timer(TokioTimer::new());
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(io), service(recorder));
            let _ = connection.await;
        }
    })
    .await
}

/// hyper's HTTP/1 server on one connection, its client sending `data`.
pub async fn hyper_serves(data: &[u8], delivery: Delivery) -> Outcome {
    converse(data, delivery, |io, recorder| async move {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Some(HEADER_READ))
            .half_close(true)
            .serve_connection(TokioIo::new(io), service(recorder))
            .with_upgrades();
        let _ = connection.await;
    })
    .await
}

/// Runs `server` on one end of a connection while a client writes `data`
/// to the other, half-closes and reads every answer. The connection is a
/// pipe each way: the client's as `delivery` says, the server's roomy (a
/// server writing to a client that reads slowly is not compared here).
async fn converse<S, F>(data: &[u8], delivery: Delivery, server: S) -> Outcome
where
    S: FnOnce(Connection, Recorder) -> F,
    F: Future<Output = ()>,
{
    let (mut writing, requests) = tokio::io::duplex(delivery.pipe());
    let (mut reading, answers_out) = tokio::io::duplex(Delivery::Whole.pipe());
    let recorder = Recorder::default();
    let talk = async {
        // A server that refused and closed fails the rest of the write.
        let _ = writing.write_all(data).await;
        let _ = writing.shutdown().await;
    };
    let listen = async {
        let mut out = Vec::new();
        let _ = reading.read_to_end(&mut out).await;
        out
    };
    let io = tokio::io::join(requests, answers_out);
    let ((), (), out) = tokio::join!(server(io, recorder.clone()), talk, listen);
    let (seen, direct) = recorder.take();
    Outcome {
        seen,
        direct,
        answers: answers(&out),
    }
}

/// The responses in `out`: every answer the handler gives has no body, a
/// refusal is the last thing on the connection.
fn answers(mut out: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !out.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut slots);
        let (Ok(httparse::Status::Complete(length)), Some(code)) =
            (response.parse(out), response.code)
        else {
            answers.push(Answer::Garbled);
            break;
        };
        let answer = match StatusCode::from_u16(code) {
            Ok(status) if status.is_informational() => Answer::Interim,
            Ok(status) if status.is_success() => Answer::Served,
            _ => Answer::Refused,
        };
        answers.push(answer);
        if answer == Answer::Refused {
            break;
        }
        out = &out[length..];
    }
    answers
}
