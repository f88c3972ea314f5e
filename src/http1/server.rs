//! The server side of an HTTP/1.1 connection: plain requests served in the
//! connection's own task.
//!
//! Nearly every request a sidecar sees is a plain HTTP/1.1 request on a
//! keep-alive connection: a head, and no body or a small one that arrived
//! with it. hyper serves each request through a general dispatcher (a boxed
//! handler future, a boxed header timer, a body fed over a channel, a read
//! buffer reallocated per request); for plain requests [`serve`] reads the
//! head, calls the handler and writes the response itself.
//!
//! Every head is parsed and checked here first, with the rules of
//! [`super::semantics`]: a malformed head, a bad Host, untrustworthy
//! framing or an HTTP/2 preface after the first request get 400 (too many
//! fields 431, another major version 505) and the connection closes. Any
//! HTTP/1.x minor version is read as HTTP/1.1 (RFC 9112 §2.3). A request
//! that needs more than this connection does ([`super::path::downstream`]
//! says which and why: HTTP/1.0, `CONNECT`, upgrades, `Expect`, trailers,
//! a chunked or streamed upload, a head larger than the read buffer) hands
//! the connection, with the bytes read so far, to hyper for the rest of its
//! life ([`Ended::Handover`]), as does an HTTP/2 preface on a new
//! connection.
//!
//! Responses are written as hyper writes them: lower-case field names (and
//! [`RawFields`](super::RawFields) lines as they came); the handler's
//! `Content-Length`, else the body's exact length, else chunked; no body
//! where [`response_has_body`] says so; a `Date` when the handler set none;
//! `Connection: close` when the connection closes after the response;
//! trailers dropped (a request that asks for them, with `TE`, goes to
//! hyper). And as under hyper, the connection
//! - bounds the wait for each request head by `header_read` (and by `idle`
//!   between requests), closing silently when it runs out;
//! - answers a client that half-closes after its request, then closes;
//! - drops the handler's future when the client's connection fails;
//! - stops between requests on shutdown, after the response in progress;
//! - closes instead of answering out of step: a body that fails, or runs
//!   shorter or longer than its declared length, ends the connection.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::fields::{ResponseFields, encode_chunk_size, encode_field, encode_length};
use super::path::{self, Fallback, HeadFacts};
use super::semantics::{
    self, BodyLength, ConnectionOptions, Framing, MAX_FIELDS, final_coding_is_chunked,
    response_has_body,
};
use super::{BoxError, RequestBody};

/// The read buffer. A request's head and body must fit in it together to
/// be served here (hyper's own limit for a head is at least this).
const READ_BUFFER: usize = 8 * 1024;
/// Body data up to this size is copied behind the head into one write;
/// larger frames go out in a vectored write.
const COPY_LIMIT: usize = 16 * 1024;

/// How [`serve`] stopped.
pub enum Ended<S> {
    /// The connection is done (closed by either side, timed out, shut down).
    Closed,
    /// hyper serves the rest of the connection, starting with these bytes,
    /// for this reason.
    Handover(Prefixed<S>, Fallback),
}

/// How long [`serve`] waits for what a client sends.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// Each wait for a request head (none: unbounded).
    pub head: Option<Duration>,
    /// The rest of a body that fits the buffer; after it the request goes
    /// to hyper, whose upload stall timer answers a body that never comes.
    pub body: Duration,
}

/// Serves plain HTTP/1.1 requests on `io` until the connection ends or a
/// request needs hyper; `context` goes to the handler with each request.
pub async fn serve<S, C, H, F, B>(
    mut io: S,
    context: &C,
    handler: &H,
    waits: Waits,
    draining: &watch::Receiver<()>,
) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clone,
    H: Fn(Request<RequestBody>, C) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + ResponseFields,
    B::Error: Into<BoxError>,
{
    let mut read = BytesMut::with_capacity(READ_BUFFER);
    let mut out = Vec::with_capacity(1024);
    let mut fields = Vec::new();
    // Set to fire no later than the current head's deadline; moved on (not
    // re-armed) when it fires early, so a request costs no timer update.
    let head_wait = waits.head;
    let mut timer = pin!(tokio::time::sleep(head_wait.unwrap_or(Duration::ZERO)));
    // Resolves when shutdown begins; made once, as waiting on a watch
    // registers (and unregisters) each time it starts.
    let mut watcher = draining.clone();
    let mut shutdown = pin!(watcher.changed());
    let mut first = true;
    // `100 Continue` was sent for the head being read.
    let mut continued = false;
    loop {
        if draining.has_changed().unwrap_or(true) {
            return Ended::Closed;
        }
        let deadline = head_wait.map(|wait| Instant::now() + wait);
        // Set while the rest of a body that fits the buffer is awaited.
        let mut body_deadline: Option<Instant> = None;
        let (request, closing) = loop {
            match parse(&mut read, &mut fields, first) {
                Parsed::Request(request, closing) => break (request, closing),
                Parsed::AwaitingBody { expect_continue } => {
                    if expect_continue && !continued {
                        continued = true;
                        out.clear();
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        if write_all(&mut io, &mut out, &[]).await.is_err() {
                            return Ended::Closed;
                        }
                    }
                    if body_deadline.is_none() {
                        let at = Instant::now() + waits.body;
                        body_deadline = Some(at);
                        if deadline.is_none_or(|head| at < head) {
                            timer.as_mut().reset(at);
                        }
                    }
                }
                Parsed::Partial if read.len() < READ_BUFFER => {}
                Parsed::Partial => {
                    let io = Prefixed::new(read.freeze(), io);
                    return Ended::Handover(io, Fallback::LargeHead);
                }
                Parsed::Handover(head, fallback) => {
                    let mut prefix = BytesMut::from(&head[..]);
                    prefix.extend_from_slice(&read);
                    return Ended::Handover(Prefixed::new(prefix.freeze(), io), fallback);
                }
                Parsed::Refused(status) => {
                    refuse(&mut io, &mut out, status).await;
                    return Ended::Closed;
                }
            }
            if read.capacity() - read.len() < READ_BUFFER / 2 {
                // Reuses the buffer in place once earlier heads are gone.
                read.reserve(READ_BUFFER.saturating_sub(read.len()));
            }
            tokio::select! {
                biased;
                result = io.read_buf(&mut read) => match result {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => {}
                },
                () = timer.as_mut(), if deadline.is_some() || body_deadline.is_some() => {
                    let now = Instant::now();
                    if body_deadline.is_some_and(|at| now >= at) {
                        // A body slower than this: hyper streams it (and
                        // its stall timer answers one that never comes).
                        let io = Prefixed::new(read.freeze(), io);
                        return Ended::Handover(io, Fallback::StreamedBody);
                    }
                    match deadline {
                        Some(deadline) if now >= deadline => return Ended::Closed,
                        Some(deadline) => {
                            let next = body_deadline.map_or(deadline, |at| at.min(deadline));
                            timer.as_mut().reset(next);
                        }
                        None => {}
                    }
                }
                _ = shutdown.as_mut(), if read.is_empty() => return Ended::Closed,
            }
        };
        first = false;
        continued = false;
        let method = request.method().clone();
        if read.capacity() == read.len() {
            read.reserve(READ_BUFFER);
        }
        // A client that half-closes after its request still gets the
        // response (and those to requests it sent before); the connection
        // closes after the last.
        let mut half_closed = false;
        let response = {
            let mut response = pin!(handler(request, context.clone()));
            loop {
                tokio::select! {
                    biased;
                    response = response.as_mut() => break response,
                    // Watching the connection: a client whose connection
                    // fails cancels its request; one that sends its next
                    // request early (pipelining) has it kept for later.
                    result = io.read_buf(&mut read), if !half_closed && read.len() < read.capacity() => match result {
                        Ok(0) => half_closed = true,
                        Err(_) => return Ended::Closed,
                        Ok(_) => {}
                    },
                }
            }
        };
        let closing =
            closing || half_closed && read.is_empty() || draining.has_changed().unwrap_or(true);
        if !respond(&mut io, &mut out, response, &method, closing).await {
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
    }
}

/// What the read buffer holds.
#[allow(clippy::large_enum_variant)] // moved once, right away: a box would cost more
enum Parsed {
    /// A plain request, and whether the connection closes after it.
    Request(Request<RequestBody>, bool),
    /// Not a whole head yet.
    Partial,
    /// A whole head whose body, which fits the buffer, is still arriving;
    /// the client waits for `100 Continue` before sending it.
    AwaitingBody { expect_continue: bool },
    /// A request for hyper: its head, when already taken off the buffer,
    /// and why.
    Handover(Bytes, Fallback),
    /// A request answered with this error status, then the connection closes.
    Refused(StatusCode),
}

/// Where one field's name and value lie in the head.
struct Field {
    name: Range<usize>,
    value: Range<usize>,
}

/// Takes a plain request off the front of `read`. `fields` is scratch
/// space; `first` says whether this is the connection's first request.
fn parse(read: &mut BytesMut, fields: &mut Vec<Field>, first: bool) -> Parsed {
    if read.is_empty() {
        return Parsed::Partial;
    }
    if semantics::is_http2_preface(read) {
        // RFC 9113 §3.4: the preface opens a connection, nothing else. Its
        // first bytes may yet be a request (`P` of `POST`): wait for all.
        return match (first, read.len() >= semantics::HTTP2_PREFACE.len()) {
            (_, false) => Parsed::Partial,
            (false, true) => Parsed::Refused(StatusCode::BAD_REQUEST),
            (true, true) => Parsed::Handover(Bytes::new(), Fallback::Http2),
        };
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let head_len = match config.parse_request_with_uninit_headers(&mut parsed, read, &mut slots) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::Version) if normalize_minor_version(read) => {
            return parse(read, fields, first);
        }
        Err(error) => return Parsed::Refused(refusal(error, read)),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Parsed::Refused(StatusCode::BAD_REQUEST);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Refused(StatusCode::BAD_REQUEST);
    };
    let base = read.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let target = range(target.as_bytes());
    let http10 = version == 0;
    let mut framing = Framing::default();
    let mut expect_continue = false;
    fields.clear();
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        framing.note(name, field.value);
        expect_continue |=
            name.eq_ignore_ascii_case(b"expect") && semantics::expects_continue(field.value);
        fields.push(Field {
            name: range(name),
            value: range(field.value),
        });
    }
    // A body that fits the buffer but has not all arrived is waited for
    // here (after `100 Continue`, when the client waits for it) rather
    // than handed to hyper.
    if let Ok((BodyLength::Known(length), _)) = framing.request(http10)
        && let Some(total) = usize::try_from(length)
            .ok()
            .and_then(|length| length.checked_add(head_len))
        && read.len() < total
        && total <= READ_BUFFER
    {
        return Parsed::AwaitingBody { expect_continue };
    }
    let head = read.split_to(head_len).freeze();
    let line = RequestLine {
        method,
        target,
        http10,
    };
    match build(&head, line, framing, fields, read) {
        Built::Request(request, closing) => Parsed::Request(request, closing),
        Built::Handover(fallback) => Parsed::Handover(head, fallback),
        Built::Refused(status) => Parsed::Refused(status),
    }
}

/// Reads `HTTP/1.x` with a minor version above 1 as `HTTP/1.1`, in place
/// (RFC 9112 §2.3); whether the request line changed.
fn normalize_minor_version(read: &mut BytesMut) -> bool {
    let Some(end) = read.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = read[..end].strip_suffix(b"\r").unwrap_or(&read[..end]);
    let Some(start) = line.len().checked_sub(8) else {
        return false;
    };
    match semantics::minor_version(&line[start..]) {
        Some(minor) if minor > 1 => {
            read[start + 7] = b'1';
            true
        }
        _ => false,
    }
}

/// The status for a head httparse refused: 431 for too many fields, 505
/// for another major version, else 400.
fn refusal(error: httparse::Error, read: &[u8]) -> StatusCode {
    match error {
        httparse::Error::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        httparse::Error::Version if has_http_version(read) => {
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Whether the request line ends in a well-formed `HTTP/d.d` version.
fn has_http_version(read: &[u8]) -> bool {
    let line = read.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    matches!(
        line.rsplit(|&b| b == b' ').next(),
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit()
    )
}

/// Answers with `status` and closes: the request cannot be read.
async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>, status: StatusCode) {
    tracing::debug!(%status, "refused a malformed request");
    out.clear();
    encode_status(out, status);
    out.extend_from_slice(b"content-length: 0\r\nconnection: close\r\n\r\n");
    let _ = write_all(io, out, &[]).await;
    let _ = io.shutdown().await;
}

/// Checks a request hyper read against the rules hyper does not enforce
/// (Host, RFC 9112 §3.2) and applies §3.2.2 (an absolute-form target's
/// authority replaces Host); the status to refuse it with otherwise.
/// HTTP/2 requests carry `:authority` instead and pass untouched.
pub fn check_hyper_request<B>(request: &mut Request<B>) -> Result<(), StatusCode> {
    let http10 = match request.version() {
        Version::HTTP_10 | Version::HTTP_09 => true,
        Version::HTTP_11 => false,
        _ => return Ok(()),
    };
    let hosts = request.headers().get_all(header::HOST).iter();
    if let Err(error) = semantics::check_host(http10, hosts.map(HeaderValue::as_bytes)) {
        tracing::debug!(%error, "refused a request");
        return Err(StatusCode::BAD_REQUEST);
    }
    if let Some(host) = request
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    Ok(())
}

/// The request line, parsed.
struct RequestLine {
    method: Method,
    target: Range<usize>,
    http10: bool,
}

/// What [`build`] made of a head.
#[allow(clippy::large_enum_variant)] // moved once, right away
enum Built {
    Request(Request<RequestBody>, bool),
    Handover(Fallback),
    Refused(StatusCode),
}

/// The request in `head` (and its body, from `rest`), checked against the
/// rules, or why it goes to hyper or is refused.
fn build(
    head: &Bytes,
    line: RequestLine,
    framing: Framing,
    fields: &[Field],
    rest: &mut BytesMut,
) -> Built {
    let Ok(uri) = Uri::from_maybe_shared(head.slice(line.target)) else {
        return Built::Refused(StatusCode::BAD_REQUEST);
    };
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut facts = HeadFacts {
        http10: line.http10,
        connect: line.method == Method::CONNECT,
        buffered: rest.len(),
        ..HeadFacts::default()
    };
    let mut has_upgrade = false;
    for field in fields {
        let raw_name = &head[field.name.clone()];
        let raw_value = &head[field.value.clone()];
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(raw_name),
            HeaderValue::from_maybe_shared(head.slice(field.value.clone())),
        ) else {
            return Built::Refused(StatusCode::BAD_REQUEST);
        };
        if name == header::EXPECT {
            facts.expect_continue |= semantics::expects_continue(raw_value);
        } else if name == header::UPGRADE {
            has_upgrade = true;
        } else if name == header::TE {
            facts.trailers |= semantics::has_token(raw_value, "trailers");
        }
        headers.append(name, value);
    }
    let hosts = headers
        .get_all(header::HOST)
        .iter()
        .map(HeaderValue::as_bytes);
    if let Err(error) = semantics::check_host(line.http10, hosts) {
        tracing::debug!(%error, "refused a request");
        return Built::Refused(StatusCode::BAD_REQUEST);
    }
    let (body, persists) = match framing.request(line.http10) {
        Ok(decided) => decided,
        Err(error) => {
            tracing::debug!(%error, "refused a request");
            return Built::Refused(StatusCode::BAD_REQUEST);
        }
    };
    facts.upgrade = semantics::wants_upgrade(line.http10, framing.connection, has_upgrade);
    facts.body = Some(body);
    if let Err(fallback) = path::downstream(&facts) {
        return Built::Handover(fallback);
    }
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
    if let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    let length = match body {
        BodyLength::Known(length) => usize::try_from(length).unwrap_or(usize::MAX),
        BodyLength::Chunked | BodyLength::UntilClose => 0,
    };
    let body = RequestBody::read(rest.split_to(length.min(rest.len())).freeze());
    let mut request = Request::new(body);
    *request.method_mut() = line.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Built::Request(request, !persists)
}

/// How the response body is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writing {
    Length(u64),
    Chunked,
}

/// The body's next step.
enum Next<F> {
    Frame(Option<F>),
    /// The body has nothing yet: send what is written so far.
    Flush,
}

/// Writes `response` to a `method` request; whether the connection can
/// carry another request.
async fn respond<S, B>(
    io: &mut S,
    out: &mut Vec<u8>,
    response: Response<B>,
    method: &Method,
    mut closing: bool,
) -> bool
where
    S: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + ResponseFields,
{
    let (parts, mut body) = response.into_parts();
    out.clear();
    if parts.status.is_informational() {
        // Interim responses cannot end an exchange (upgrades go to hyper).
        tracing::warn!(status = %parts.status, "a handler answered with an interim status");
        out.extend_from_slice(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        let _ = write_all(io, out, &[]).await;
        return false;
    }
    let length = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let head_request = *method == Method::HEAD;
    let sends_body = response_has_body(method, parts.status);
    let bodiless = !sends_body && !head_request;
    encode_status(out, parts.status);
    // As hyper: no length on 204/304, none for an empty body (but HEAD
    // keeps the length of what GET would send).
    let keeps_length = !(bodiless || length == Some(0) && !head_request);
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3 item 3).
    let chunked = sends_body && parts.headers.contains_key(header::TRANSFER_ENCODING);
    let mut writing = chunked.then_some(Writing::Chunked);
    let (mut dated, mut said_close) = (false, false);
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            // The first valid one.
            if !keeps_length || writing.is_some() {
                continue;
            }
            let Some(declared) = semantics::parse_decimal(value.as_bytes().trim_ascii()) else {
                continue;
            };
            writing = Some(Writing::Length(declared));
        } else if name == header::TRANSFER_ENCODING {
            if !sends_body {
                continue;
            }
            out.extend_from_slice(b"transfer-encoding: ");
            out.extend_from_slice(value.as_bytes());
            if final_coding_is_chunked(value.as_bytes()) != Some(true) {
                out.extend_from_slice(b", chunked");
            }
            out.extend_from_slice(b"\r\n");
            continue;
        } else if name == header::CONNECTION {
            let close = ConnectionOptions::of([value.as_bytes()]).close;
            closing |= close;
            said_close |= close;
        } else if name == header::DATE {
            dated = true;
        }
        encode_field(out, name, value);
    }
    if let Some(raw) = body.take_fields() {
        out.extend_from_slice(raw.lines());
        dated |= raw.date;
        if let Some(declared) = raw
            .content_length
            .filter(|_| keeps_length && writing.is_none())
        {
            writing = Some(Writing::Length(declared));
            encode_length(out, declared);
        }
    }
    let writing = match (writing, length) {
        (Some(writing), _) => writing,
        (None, None) if sends_body => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Writing::Chunked
        }
        (None, None) => Writing::Length(0),
        (None, Some(length)) => {
            if !(bodiless || head_request && length == 0) {
                encode_length(out, length);
            }
            Writing::Length(length)
        }
    };
    if closing && !said_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let intact = {
        let body = pin!(body);
        if sends_body && writing != Writing::Length(0) {
            match send_body(io, out, body, writing).await {
                Ok(intact) => intact,
                Err(_) => return false,
            }
        } else {
            true
        }
        // The body is dropped here: the response is over for the handler
        // (a traced body ends its span).
    };
    write_all(io, out, &[]).await.is_ok() && intact && !closing
}

/// Streams the body behind the head in `out`; whether it ended as framed.
async fn send_body<S, B>(
    io: &mut S,
    out: &mut Vec<u8>,
    mut body: Pin<&mut B>,
    writing: Writing,
) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
    B: Body<Data = Bytes>,
{
    let mut left = match writing {
        Writing::Length(length) => Some(length),
        Writing::Chunked => None,
    };
    loop {
        let next = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Next::Flush),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Next::Frame(frame.map(|f| f.map_err(drop)))),
        })
        .await;
        let mut data = match next {
            Next::Flush => {
                write_all(io, out, &[]).await?;
                continue;
            }
            Next::Frame(None) => break,
            // Cut short: the client sees the connection close.
            Next::Frame(Some(Err(_))) => return Ok(false),
            // Trailers: not sent (nobody asked for them, see the module docs).
            Next::Frame(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        };
        match &mut left {
            Some(left) => {
                let room = usize::try_from(*left).unwrap_or(usize::MAX);
                if data.len() > room {
                    put(io, out, &data.split_to(room)).await?;
                    return Ok(false);
                }
                *left -= data.len() as u64;
                put(io, out, &data).await?;
            }
            None if data.is_empty() => {} // an empty chunk would end the body
            None => {
                encode_chunk_size(out, data.len());
                put(io, out, &data).await?;
                out.extend_from_slice(b"\r\n");
            }
        }
        if body.is_end_stream() {
            break;
        }
    }
    match left {
        Some(left) => Ok(left == 0),
        None => {
            out.extend_from_slice(b"0\r\n\r\n");
            Ok(true)
        }
    }
}

/// Appends `data` to `out`, or, when large, writes both out together.
async fn put<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
    if data.len() <= COPY_LIMIT {
        out.extend_from_slice(data);
        if out.len() < COPY_LIMIT * 4 {
            return Ok(());
        }
        return write_all(io, out, &[]).await;
    }
    write_all(io, out, data).await
}

/// Writes `out` then `more` (and clears `out`).
async fn write_all<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    more: &[u8],
) -> io::Result<()> {
    let (mut first, mut second) = (&out[..], more);
    while !first.is_empty() || !second.is_empty() {
        let written = io
            .write_vectored(&[IoSlice::new(first), IoSlice::new(second)])
            .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_first = written.min(first.len());
        first = &first[from_first..];
        second = &second[written - from_first..];
    }
    out.clear();
    io.flush().await
}

fn encode_status(out: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    // A reason must be written: many parsers expect one.
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the current time as an HTTP date (RFC 9110 §5.6.7), formatted
/// once a second per thread.
fn http_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// A connection whose first bytes were already read.
pub struct Prefixed<S> {
    prefix: Bytes,
    io: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, io: S) -> Self {
        Self { prefix, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
