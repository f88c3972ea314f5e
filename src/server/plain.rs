//! The HTTP/1.1 fast path: plain requests served without hyper.
//!
//! Nearly every request a sidecar sees is a plain HTTP/1.1 request on a
//! keep-alive connection: a head, and no body or a small one that arrived
//! with it. hyper serves each request through a general dispatcher (a boxed
//! handler future, a boxed header timer, a body fed over a channel, a read
//! buffer reallocated per request); for plain requests [`serve`] reads the
//! head, calls the handler and writes the response itself, in the
//! connection's own task.
//!
//! Anything else hands the connection, with the bytes read so far, to
//! hyper for the rest of its life ([`Ended::Handover`]): HTTP/2 (its
//! preface does not parse as HTTP/1.1), HTTP/1.0, `CONNECT`, upgrades,
//! `Expect`, `TE`, `Transfer-Encoding`, a body that did not arrive with its
//! head, a head larger than the read buffer, and anything that does not
//! parse. So hyper still answers every unusual or malformed request exactly
//! as before (400, 431, `100 Continue`, ...).
//!
//! Responses are written as hyper writes them: lower-case field names (and
//! [`RawFields`](crate::http1::RawFields) lines as they came); the handler's `Content-Length`, else
//! the body's exact length, else chunked;
//! no body for `HEAD`, 204 and 304; a `Date` when the handler set none;
//! `Connection: close` when the connection closes after the response;
//! trailers dropped (a request that asks for them, with `TE`, goes to
//! hyper). And as under hyper, the connection
//! - bounds the wait for each request head by `header_read` (and by `idle`
//!   between requests), closing silently when it runs out;
//! - notices a client that leaves while its request is in flight, and
//!   drops the handler's future;
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

use super::{BoxError, ConnInfo, RequestBody};
use crate::http1::{ResponseFields, encode_chunk_size, encode_field, has_token, parse_decimal};

/// The read buffer. A request's head and body must fit in it together to
/// be served here (hyper's own limit for a head is at least this).
const READ_BUFFER: usize = 8 * 1024;
/// Request header fields, at most (hyper's limit: more gets its 431).
const MAX_FIELDS: usize = 100;
/// Body data up to this size is copied behind the head into one write;
/// larger frames go out in a vectored write.
const COPY_LIMIT: usize = 16 * 1024;

/// How [`serve`] stopped.
pub(super) enum Ended<S> {
    /// The connection is done (closed by either side, timed out, shut down).
    Closed,
    /// hyper serves the rest of the connection, starting with these bytes.
    Handover(Prefixed<S>),
}

/// Serves plain HTTP/1.1 requests on `io` until the connection ends or a
/// request needs hyper. `head_wait` bounds each wait for a request head.
pub(super) async fn serve<S, H, F, B>(
    mut io: S,
    info: &ConnInfo,
    handler: &H,
    head_wait: Option<Duration>,
    draining: &watch::Receiver<()>,
) -> Ended<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<RequestBody>, ConnInfo) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + ResponseFields,
    B::Error: Into<BoxError>,
{
    let mut read = BytesMut::with_capacity(READ_BUFFER);
    let mut out = Vec::with_capacity(1024);
    let mut fields = Vec::new();
    // Set to fire no later than the current head's deadline; moved on (not
    // re-armed) when it fires early, so a request costs no timer update.
    let mut timer = pin!(tokio::time::sleep(head_wait.unwrap_or(Duration::ZERO)));
    // Resolves when shutdown begins; made once, as waiting on a watch
    // registers (and unregisters) each time it starts.
    let mut watcher = draining.clone();
    let mut shutdown = pin!(watcher.changed());
    loop {
        if draining.has_changed().unwrap_or(true) {
            return Ended::Closed;
        }
        let deadline = head_wait.map(|wait| Instant::now() + wait);
        let (request, closing) = loop {
            match parse(&mut read, &mut fields) {
                Parsed::Request(request, closing) => break (request, closing),
                Parsed::Partial if read.len() < READ_BUFFER => {}
                Parsed::Partial => return Ended::Handover(Prefixed::new(read.freeze(), io)),
                Parsed::Handover(head) => {
                    let mut prefix = BytesMut::from(&head[..]);
                    prefix.extend_from_slice(&read);
                    return Ended::Handover(Prefixed::new(prefix.freeze(), io));
                }
            }
            if read.capacity() - read.len() < READ_BUFFER / 2 {
                // Reuses the buffer in place once earlier heads are gone.
                read.reserve(READ_BUFFER - read.len());
            }
            tokio::select! {
                biased;
                result = io.read_buf(&mut read) => match result {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => {}
                },
                () = timer.as_mut(), if deadline.is_some() => {
                    let deadline = deadline.unwrap_or_else(Instant::now);
                    if Instant::now() >= deadline {
                        return Ended::Closed;
                    }
                    timer.as_mut().reset(deadline);
                }
                _ = shutdown.as_mut(), if read.is_empty() => return Ended::Closed,
            }
        };
        let head_request = request.method() == Method::HEAD;
        if read.capacity() == read.len() {
            read.reserve(READ_BUFFER);
        }
        let response = {
            let mut response = pin!(handler(request, info.clone()));
            loop {
                tokio::select! {
                    biased;
                    response = response.as_mut() => break response,
                    // Watching the connection: a client that leaves cancels
                    // its request; one that sends its next request early
                    // (pipelining) has it kept for later.
                    result = io.read_buf(&mut read), if read.len() < read.capacity() => match result {
                        Ok(0) | Err(_) => return Ended::Closed,
                        Ok(_) => {}
                    },
                }
            }
        };
        let closing = closing || draining.has_changed().unwrap_or(true);
        if !respond(&mut io, &mut out, response, head_request, closing).await {
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
    }
}

/// What the read buffer holds.
#[allow(clippy::large_enum_variant)] // moved once, right away: a box would cost more
enum Parsed {
    /// A plain request, and whether it asked to close the connection after it.
    Request(Request<RequestBody>, bool),
    /// Not a whole head yet.
    Partial,
    /// A request for hyper; its head, when already taken off the buffer.
    Handover(Bytes),
}

/// Where one field's name and value lie in the head.
struct Field {
    name: Range<usize>,
    value: Range<usize>,
}

/// Takes a plain request off the front of `read`. `fields` is scratch space.
fn parse(read: &mut BytesMut, fields: &mut Vec<Field>) -> Parsed {
    if read.is_empty() {
        return Parsed::Partial;
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let head_len = match config.parse_request_with_uninit_headers(&mut parsed, read, &mut slots) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Handover(Bytes::new()),
    };
    let (Some(method), Some(target), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::Handover(Bytes::new());
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Handover(Bytes::new());
    };
    if method == Method::CONNECT {
        return Parsed::Handover(Bytes::new());
    }
    let base = read.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let target = range(target.as_bytes());
    fields.clear();
    fields.extend(parsed.headers.iter().map(|field| Field {
        name: range(field.name.as_bytes()),
        value: range(field.value),
    }));
    let head = read.split_to(head_len).freeze();
    match build(&head, method, target, fields, read) {
        Some((request, closing)) => Parsed::Request(request, closing),
        None => Parsed::Handover(head),
    }
}

/// The request in `head` (and its body, from `rest`), or `None` when it
/// is not plain.
fn build(
    head: &Bytes,
    method: Method,
    target: Range<usize>,
    fields: &[Field],
    rest: &mut BytesMut,
) -> Option<(Request<RequestBody>, bool)> {
    let uri = Uri::from_maybe_shared(head.slice(target)).ok()?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut length = None;
    let mut closing = false;
    for field in fields {
        let name = HeaderName::from_bytes(&head[field.name.clone()]).ok()?;
        let value = &head[field.value.clone()];
        if name == header::CONTENT_LENGTH {
            // One value only; anything else is hyper's to judge.
            if length.is_some() {
                return None;
            }
            length = Some(parse_decimal(value)?);
        } else if name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
            || name == header::TE
        {
            return None;
        } else if name == header::CONNECTION {
            closing |= has_token(value, "close");
        }
        let value = HeaderValue::from_maybe_shared(head.slice(field.value.clone())).ok()?;
        headers.append(name, value);
    }
    let length = usize::try_from(length.unwrap_or(0)).ok()?;
    if length > rest.len() {
        return None;
    }
    let body = RequestBody::read(rest.split_to(length).freeze());
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some((request, closing))
}

/// How the response body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

/// The body's next step.
enum Next<F> {
    Frame(Option<F>),
    /// The body has nothing yet: send what is written so far.
    Flush,
}

/// Writes `response`; whether the connection can carry another request.
async fn respond<S, B>(
    io: &mut S,
    out: &mut Vec<u8>,
    response: Response<B>,
    head_request: bool,
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
    let bodiless = matches!(
        parts.status,
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    );
    let sends_body = !head_request && !bodiless;
    encode_status(out, parts.status);
    // As hyper: no length on 204/304, none for an empty body (but HEAD
    // keeps the length of what GET would send).
    let keeps_length = !(bodiless || length == Some(0) && !head_request);
    let mut framing = None;
    let (mut dated, mut said_close) = (false, false);
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            // The first valid one.
            if !keeps_length || framing.is_some() {
                continue;
            }
            let Some(declared) = parse_decimal(value.as_bytes().trim_ascii()) else {
                continue;
            };
            framing = Some(Framing::Length(declared));
        } else if name == header::TRANSFER_ENCODING {
            if !sends_body || framing.is_some() {
                continue;
            }
            framing = Some(Framing::Chunked);
            out.extend_from_slice(b"transfer-encoding: ");
            out.extend_from_slice(value.as_bytes());
            if !ends_chunked(value.as_bytes()) {
                out.extend_from_slice(b", chunked");
            }
            out.extend_from_slice(b"\r\n");
            continue;
        } else if name == header::CONNECTION {
            let close = has_token(value.as_bytes(), "close");
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
            .filter(|_| keeps_length && framing.is_none())
        {
            framing = Some(Framing::Length(declared));
            encode_length(out, declared);
        }
    }
    let framing = match (framing, length) {
        (Some(framing), _) => framing,
        (None, None) if sends_body => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
        (None, None) => Framing::Length(0),
        (None, Some(length)) => {
            if !(bodiless || head_request && length == 0) {
                encode_length(out, length);
            }
            Framing::Length(length)
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
        if sends_body && framing != Framing::Length(0) {
            match send_body(io, out, body, framing).await {
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
    framing: Framing,
) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
    B: Body<Data = Bytes>,
{
    let mut left = match framing {
        Framing::Length(length) => Some(length),
        Framing::Chunked => None,
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

fn encode_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
    out.extend_from_slice(b"\r\n");
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

fn ends_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
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
pub(super) struct Prefixed<S> {
    prefix: Bytes,
    io: S,
}

impl<S> Prefixed<S> {
    pub(super) fn new(prefix: Bytes, io: S) -> Self {
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
#[path = "plain_tests.rs"]
mod tests;
