//! Differential: request framing. The same bytes, one connection's worth
//! of requests, go to
//!
//! - **tracehop**: `http1::server::serve`, continued with hyper after an
//!   `Ended::Handover` exactly as `server::Conn::drive` does (the auto
//!   builder, `check_hyper_request` before the handler);
//! - **hyper**: hyper's HTTP/1 server alone (`half_close(true)`, as
//!   tracehop configures it), with `check_hyper_request` before the
//!   handler too.
//!
//! Each runs twice, the bytes arriving whole and one byte at a time (a
//! one-byte pipe, which sends heads and bodies down the partial-read
//! paths). The client writes the input, half-closes and reads every
//! answer. A handler records each request it sees (method, target,
//! version, `Host` values, the body bytes, or that the body failed) and
//! answers `200` with no body, after yielding once as a real handler
//! waiting on its upstream would. Both servers must see the same requests
//! in the same order and write the same answers (interim, served, refused
//! with a 4xx/5xx, whichever); the number served says whether the
//! connection stayed open after each.
//!
//! Where tracehop differs on purpose, the difference is written here,
//! narrowly, at the first request the two disagree on, when the direct
//! path read its head (tracehop's earlier requests were all served there,
//! so where the head starts in the input is known):
//!
//! - *rewrites*, for "tracehop reads X as Y": hyper's input is rewritten
//!   in place (same length) from X to Y, and the two must then agree on
//!   everything. `HTTP/1.x` with x > 1 is read as `HTTP/1.1` (RFC 9112
//!   §2.3); a `Content-Length` list of identical values is that value
//!   (RFC 9110 §8.6).
//! - *refusals* where hyper does otherwise: a request with both
//!   `Transfer-Encoding` and `Content-Length` (RFC 9112 §6.1: a server MAY
//!   reject it; tracehop does when the length is invalid, hyper ignores
//!   the length); an HTTP/2 preface after the first request, which hyper
//!   closes on without an answer (RFC 9113 §3.4: the preface only opens a
//!   connection); and, arriving byte by byte, bytes that cannot start a
//!   request and are never followed by the end of a head: tracehop
//!   answers 400 as soon as it sees them, hyper only parses a head
//!   arriving in pieces once one seems complete, and closes without an
//!   answer.
//! - an input that opens with the HTTP/2 preface is skipped: tracehop
//!   serves HTTP/2 with prior knowledge on the same port, hyper's HTTP/1
//!   server does not; this target compares HTTP/1.
#![no_main]

#[path = "runtime.rs"]
mod runtime;

use std::convert::Infallible;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tracehop::http1::RequestBody;
use tracehop::http1::path::{Fallback, ServedBy};
use tracehop::http1::semantics::{self, HTTP2_PREFACE, parse_decimal};
use tracehop::http1::server::{self as direct, Ended, Waits, check_hyper_request};
use tracehop::server::{Body, empty, text_response};

/// tracehop's default header-read timeout (`ServerOptions`), which also
/// bounds the direct path's wait for a head.
const HEADER_READ: Duration = Duration::from_secs(10);

/// The direct path's waits, as `server::serve` sets them by default.
const WAITS: Waits = Waits {
    head: Some(HEADER_READ),
    body: Duration::from_secs(10),
};

fuzz_target!(|data: &[u8]| {
    if data.starts_with(HTTP2_PREFACE) {
        return; // HTTP/2 with prior knowledge: not HTTP/1 (module docs)
    }
    for delivery in [Delivery::Whole, Delivery::Bytewise] {
        let tracehop = runtime::run(tracehop_serves(data, delivery));
        if std::env::var_os("DEBUG_OUT").is_some() {
            eprintln!("{delivery:?} T {tracehop:?}");
        }
        check(data, delivery, &tracehop);
    }
});

/// How the client's bytes reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// All at once, as far as the server reads.
    Whole,
    /// One byte per read: every head and body arrives in pieces.
    Bytewise,
}

impl Delivery {
    /// The pipe's capacity.
    fn pipe(self) -> usize {
        match self {
            Self::Whole => 64 * 1024,
            Self::Bytewise => 1,
        }
    }
}

/// What a server did with one connection's bytes.
#[derive(Debug, Default)]
struct Outcome {
    /// Each request the handler saw, in order.
    seen: Vec<Seen>,
    /// Whether tracehop's direct path read each of them.
    direct: Vec<bool>,
    answers: Vec<Answer>,
}

/// A request as the handler saw it.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    version: Version,
    hosts: Vec<Bytes>,
    /// `None`: the body failed (cut short).
    body: Option<Bytes>,
}

/// One response on the wire, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Interim,
    Served,
    /// Refused (4xx, 5xx: which one is not compared); the connection
    /// closes after it.
    Refused,
    /// Bytes that are not a response head.
    Garbled,
}

/// What became of one request: the interim answers it got, and how it
/// ended.
#[derive(Debug, PartialEq, Eq)]
struct Fate<'a> {
    interim: usize,
    end: End<'a>,
}

#[derive(Debug, PartialEq, Eq)]
enum End<'a> {
    /// The handler saw it; whether its answer was written.
    Served(&'a Seen, bool),
    Refused,
    /// The connection closed with no answer.
    Closed,
    Garbled,
}

impl Outcome {
    /// The fate of request `k`.
    fn fate(&self, k: usize) -> Fate<'_> {
        // Each request's answers: interim ones, then a final one.
        let mut answers = self.answers.split_inclusive(|a| *a != Answer::Interim);
        let answers = answers.nth(k).unwrap_or_default();
        let interim = answers.iter().filter(|a| **a == Answer::Interim).count();
        let last = answers.last().copied().filter(|a| *a != Answer::Interim);
        let end = match (self.seen.get(k), last) {
            (_, Some(Answer::Garbled)) => End::Garbled,
            (Some(seen), last) => End::Served(seen, last == Some(Answer::Served)),
            (None, Some(Answer::Refused)) => End::Refused,
            (None, Some(_)) => End::Garbled, // an answer to no request
            (None, None) => End::Closed,
        };
        Fate { interim, end }
    }

    /// The first request from `from` on the two disagree on, if any.
    fn first_difference(&self, other: &Self, from: usize) -> Option<usize> {
        let requests = self.seen.len().max(other.seen.len()) + 1;
        (from..requests).find(|&k| self.fate(k) != other.fate(k))
    }
}

/// Compares tracehop's run with hyper's on the same bytes, delivered
/// alike, rewriting hyper's input where tracehop reads something as
/// something else.
fn check(data: &[u8], delivery: Delivery, tracehop: &Outcome) {
    let mut input = data.to_vec();
    let mut rewrites = Vec::new();
    // The version of every head the direct path read, read as it reads
    // them (it rewrites each head before parsing or handing it over).
    for k in 0..=tracehop.seen.len() {
        let Some(start) = RequestHead::start(&input, tracehop, k) else {
            break;
        };
        if let Some(at) = minor_above_one(&input, start) {
            input[at] = b'1';
            rewrites.push((k, "RFC 9112 §2.3: HTTP/1.x with x > 1 is read as HTTP/1.1"));
        }
    }
    let mut from = 0;
    loop {
        let hyper = runtime::run(hyper_serves(&input, delivery));
        let Some(k) = tracehop.first_difference(&hyper, from) else {
            return;
        };
        let start = RequestHead::start(&input, tracehop, k);
        if let Some(rule) = start.and_then(|start| rewrite(&mut input, start)) {
            rewrites.push((k, rule));
            continue;
        }
        let head = start.and_then(|start| RequestHead::parse(&input, start));
        let (ours, theirs) = (tracehop.fate(k), hyper.fate(k));
        let expects_continue = head.as_ref().is_some_and(|head| {
            let mut expects = head.values("expect");
            expects.any(|value| semantics::expects_continue(&input[value]))
        });
        if ours.end == theirs.end && allowed_interim(expects_continue, &ours, &theirs).is_some() {
            from = k + 1;
            continue;
        }
        let allowed = start.and_then(|start| {
            let rest = &input[start..];
            allowed_end(rest, head.as_ref(), delivery, &ours.end, &theirs.end)
        });
        if allowed.is_some() {
            return;
        }
        panic!(
            "request framing differs at request {k} ({delivery:?}):\n  tracehop: {ours:?}\n  \
             hyper:    {theirs:?}\ninput: {}\nrewrites for hyper: {rewrites:?}\n\
             tracehop: {tracehop:#?}\nhyper: {hyper:#?}",
            Escaped(data),
        );
    }
}

/// An interim answer tracehop leaves out on purpose (module docs), to a
/// request that `expects_continue`.
fn allowed_interim(
    expects_continue: bool,
    ours: &Fate<'_>,
    theirs: &Fate<'_>,
) -> Option<&'static str> {
    (ours.interim == 0 && theirs.interim == 1 && expects_continue)
        .then_some("RFC 9110 §10.1.1: a server MAY omit 100 Continue once content arrived")
}

/// An end tracehop gives a request on purpose where hyper gives another
/// (module docs): `rest` is the input from the request on, `head` its
/// head if it parses.
fn allowed_end(
    rest: &[u8],
    head: Option<&RequestHead>,
    delivery: Delivery,
    ours: &End<'_>,
    theirs: &End<'_>,
) -> Option<&'static str> {
    let both_framings = head.is_some_and(|h| h.has("transfer-encoding") && h.has("content-length"));
    // hyper skips the empty lines before a request line, then looks for
    // the end of a head only in what arrives after them.
    let line = rest.iter().position(|&b| b != b'\r' && b != b'\n');
    let rest_of_head = &rest[line.unwrap_or(rest.len())..];
    let ends_a_head = rest_of_head.windows(2).any(|w| w == b"\n\n")
        || rest_of_head.windows(3).any(|w| w == b"\n\r\n");
    match (ours, theirs) {
        (End::Refused, End::Closed) if rest.starts_with(HTTP2_PREFACE) => {
            Some("RFC 9113 §3.4: the HTTP/2 preface only opens a connection")
        }
        (End::Refused, _) if both_framings => {
            Some("RFC 9112 §6.1: a server MAY reject Transfer-Encoding with Content-Length")
        }
        (End::Refused, End::Closed) if delivery == Delivery::Bytewise && !ends_a_head => {
            Some("hyper parses a head arriving in pieces only once it ends; it never did")
        }
        (End::Closed, End::Served(Seen { body: None, .. }, _)) => {
            Some("RFC 9112 §8: an incomplete request MAY end with the connection, unanswered")
        }
        _ => None,
    }
}

/// The head of a request the direct path read, located in the input.
struct RequestHead {
    end: usize,
    /// Each field's name (lower case) and where its value is in the input.
    fields: Vec<(String, Range<usize>)>,
}

impl RequestHead {
    /// Where request `k` starts in the input, when tracehop's direct path
    /// served every request before it (each took its head and its body's
    /// length).
    fn start(input: &[u8], tracehop: &Outcome, k: usize) -> Option<usize> {
        let mut start = 0;
        for j in 0..k {
            if !*tracehop.direct.get(j)? {
                return None;
            }
            start = Self::parse(input, start)?.end + tracehop.seen[j].body.as_ref()?.len();
        }
        Some(start)
    }

    /// Parses the head at `start` as the direct path does (a minor version
    /// above 1 read as 1).
    fn parse(input: &[u8], start: usize) -> Option<Self> {
        let mut copy = input[start..].to_vec();
        if let Some(at) = minor_above_one(input, start) {
            copy[at - start] = b'1';
        }
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut request = httparse::Request::new(&mut slots);
        let Ok(httparse::Status::Complete(length)) = request.parse(&copy) else {
            return None;
        };
        let base = copy.as_ptr() as usize;
        let fields = request
            .headers
            .iter()
            .map(|field| {
                let from = field.value.as_ptr() as usize - base + start;
                let name = field.name.to_ascii_lowercase();
                (name, from..from + field.value.len())
            })
            .collect();
        Some(Self {
            end: start + length,
            fields,
        })
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Range<usize>> + 'a {
        self.fields
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.clone())
    }

    fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }
}

/// Rewrites `input` (in place, same length) the way tracehop's direct
/// path reads the head at `start` when it serves it; what it rewrote,
/// when it did.
fn rewrite(input: &mut [u8], start: usize) -> Option<&'static str> {
    let head = RequestHead::parse(input, start)?;
    let mut rewrote = false;
    for value in head.values("content-length") {
        if let Some(length) = identical_list(&input[value.clone()]) {
            let mut text = length.to_string().into_bytes();
            text.resize(value.len(), b' ');
            input[value].copy_from_slice(&text);
            rewrote = true;
        }
    }
    rewrote.then_some("RFC 9110 §8.6: a list of identical lengths is that length")
}

/// Where the minor version digit of the request line at `start` is, when
/// the line (as far as it goes: the direct path reads the version as soon
/// as it arrives) ends in `HTTP/1.x` with x > 1.
fn minor_above_one(input: &[u8], start: usize) -> Option<usize> {
    let rest = &input[start..];
    let line = rest.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.len().checked_sub(8)?;
    matches!(
        &line[version..],
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']
    )
    .then_some(start + version + 7)
}

/// The value of a `Content-Length` list whose elements are all the same
/// valid length (and which is a list: it has a comma).
fn identical_list(value: &[u8]) -> Option<u64> {
    if !value.contains(&b',') {
        return None;
    }
    let mut lengths = value
        .split(|&b| b == b',')
        .map(|v| parse_decimal(v.trim_ascii()));
    let first = lengths.next()??;
    lengths.all(|l| l == Some(first)).then_some(first)
}

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
async fn tracehop_serves(data: &[u8], delivery: Delivery) -> Outcome {
    converse(data, delivery, |io, recorder| async move {
        // Kept open for the whole connection: a dropped sender means shutdown.
        let (_drain, draining) = watch::channel(());
        let served = direct::serve(io, &recorder, &record, WAITS, &draining);
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
async fn hyper_serves(data: &[u8], delivery: Delivery) -> Outcome {
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

/// Runs `server` on one end of a pipe while a client writes `data` to the
/// other, half-closes and reads every answer.
async fn converse<S, F>(data: &[u8], delivery: Delivery, server: S) -> Outcome
where
    S: FnOnce(DuplexStream, Recorder) -> F,
    F: Future<Output = ()>,
{
    let (client, io) = tokio::io::duplex(delivery.pipe());
    let recorder = Recorder::default();
    let (mut reading, mut writing) = tokio::io::split(client);
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

impl fmt::Debug for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seen")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("version", &self.version)
            .field("hosts", &self.hosts)
            .field("body", &self.body.as_deref().map(Escaped))
            .finish()
    }
}

/// Bytes shown as an escaped string.
struct Escaped<'a>(&'a [u8]);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
