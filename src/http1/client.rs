//! The client side of an HTTP/1.1 upstream connection, spoken by the task
//! that serves the downstream request: the proxy's one HTTP/1.1 client.
//!
//! hyper's client runs each connection as a task of its own and passes
//! every request and response across channels between tasks. A proxy
//! that keeps one upstream connection per downstream connection (the
//! proxy's `affinity` module) needs neither: [`exchange`] writes the
//! request and reads the response head on the connection directly, and
//! [`Http1Body`] streams the response body off the socket as the server
//! sends it downstream, with no copy (frames are slices of the read
//! buffer).
//!
//! Framing follows RFC 9112, decided by [`super::semantics`]. The request
//! body goes out with its length when known, else chunked (§7.1); an early
//! response stops the upload. The response's body length and whether the
//! connection persists are [`semantics::Framing::response`]'s; the fields
//! `Connection` names, hop-by-hop fields and `Content-Length` stay off the
//! lines passed on. Interim 1xx responses are skipped; a `101` to an
//! upgrade hands the connection over ([`Http1Body::take_switched`]). A
//! connection carries another request only when the response ended
//! cleanly on a persistent connection (§9.3) and nothing followed it.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::buffers;
pub use super::client_body::Http1Body;
use super::client_body::{Chunk, Framing};
use super::connection::FieldSpan;
pub use super::connection::{Connection, Home, Stream, Wire};
use super::fields::{RawFields, encode_chunk_size, encode_field, encode_length};
use super::response::poll_write_two;
use super::semantics::{self, BodyLength, MAX_FIELDS, MAX_RESPONSE_HEAD};

/// What went wrong on the connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("upstream closed the connection before responding")]
    ClosedBeforeResponse,
    #[error("upstream closed the connection before the response body ended")]
    Truncated,
    #[error("invalid response from upstream: {0}")]
    Invalid(&'static str),
    #[error("invalid response head from upstream: {0}")]
    Parse(#[from] httparse::Error),
    #[error("untrustworthy response framing from upstream: {0}")]
    Framing(semantics::FramingError),
    #[error("upstream response head exceeds {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
}

/// A failed exchange: what failed, and whether sending again is safe.
/// `E` is the request body's error type, handed back as it came, so the
/// caller knows its own body's failures without looking for them.
#[derive(Debug)]
pub struct ExchangeError<E> {
    pub cause: Cause<E>,
    /// The connection failed before any of the response arrived and before
    /// any of the request body was taken: sending the request again on
    /// another connection is possible (if it is idempotent).
    pub retryable: bool,
}

/// What failed in an exchange.
#[derive(Debug)]
pub enum Cause<E> {
    /// The connection, or the upstream's response.
    Upstream(WireError),
    /// The request body being sent.
    RequestBody(E),
}

impl<E: std::fmt::Display> std::fmt::Display for ExchangeError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Cause::Upstream(error) => error.fmt(f),
            Cause::RequestBody(error) => write!(f, "request body: {error}"),
        }
    }
}

/// How the request body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Upload {
    None,
    Length(u64),
    Chunked,
}

/// Sends the request (`parts` with an origin-form URI and `Host`, and
/// `body`) on `connection` and reads the response head. The response body
/// owns the connection from then on.
pub async fn exchange<B, H>(
    mut connection: Box<Connection>,
    parts: &Parts,
    added: &[(&HeaderName, HeaderValue)],
    body: &mut B,
) -> Result<Response<Http1Body<H>>, ExchangeError<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
    H: Home,
{
    let upload = if body.is_end_stream() {
        Upload::None
    } else {
        body.size_hint()
            .exact()
            .map_or(Upload::Chunked, Upload::Length)
    };
    // Only a request with `Upgrade` can be answered `101` (one lookup for
    // the rest).
    let upgrade = parts.headers.contains_key(http::header::UPGRADE) && {
        let connection = parts.headers.get_all(http::header::CONNECTION).iter();
        let options = semantics::ConnectionOptions::of(connection.map(HeaderValue::as_bytes));
        semantics::wants_upgrade(false, options, true)
    };
    let conn = &mut *connection;
    conn.write.clear();
    // Taken at their working size after `shed_buffers`: growing costs copies.
    buffers::refill(&mut conn.write);
    buffers::refill(&mut conn.fields);
    encode_head(&mut conn.write, parts, added, upload);
    // A sized body's bytes go out from their own buffer behind `write`,
    // uncopied, in the same write as what `write` holds; its first part,
    // when at hand (a body read whole), with the head. A 16 KiB upload:
    // one write instead of two and no 16 KiB copy (bench/README.md,
    // uploads).
    let mut data = Bytes::new();
    let mut written = 0;
    let mut flushed = false;
    let mut uploaded = upload == Upload::None;
    let mut body_taken = false;
    let mut received = false;
    let fail = |error: WireError, retryable: bool| ExchangeError {
        cause: Cause::Upstream(error),
        retryable,
    };
    let body_failed = |error| ExchangeError {
        cause: Cause::RequestBody(error),
        retryable: false,
    };
    let head = poll_fn(|cx| {
        // The first poll, before the head is written (nothing taken yet).
        if !body_taken && matches!(upload, Upload::Length(_)) {
            body_taken = true;
            if let Poll::Ready(ended) = next_frame(body, cx, upload, &mut conn.write, &mut data) {
                uploaded = ended.map_err(body_failed)?;
            }
        }
        // The request, as far as the socket and the body allow.
        loop {
            let buffered = conn.write.len();
            if written < buffered + data.len() {
                let head = &conn.write[written.min(buffered)..];
                let rest = &data[written.saturating_sub(buffered)..];
                match poll_write_two(Pin::new(&mut conn.io), cx, head, rest) {
                    Poll::Ready(Ok(0)) => {
                        let error = io::Error::from(io::ErrorKind::WriteZero);
                        return Poll::Ready(Err(fail(WireError::Io(error), false)));
                    }
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(error)) => {
                        let retryable = !received && !body_taken && is_reset(&error);
                        return Poll::Ready(Err(fail(WireError::Io(error), retryable)));
                    }
                    Poll::Pending => break,
                }
                continue;
            }
            if !flushed {
                match Pin::new(&mut conn.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => flushed = true,
                    Poll::Ready(Err(error)) => {
                        return Poll::Ready(Err(fail(WireError::Io(error), false)));
                    }
                    Poll::Pending => break,
                }
            }
            if uploaded {
                break;
            }
            conn.write.clear();
            data = Bytes::new();
            written = 0;
            body_taken = true;
            match next_frame(body, cx, upload, &mut conn.write, &mut data) {
                Poll::Ready(ended) => uploaded = ended.map_err(body_failed)?,
                Poll::Pending => break,
            }
            flushed = false;
        }
        // The response head, whenever it comes (an early one ends the upload).
        loop {
            match parse_head(&mut conn.read, &mut conn.fields, &parts.method, upgrade) {
                Ok(Some(head)) => return Poll::Ready(Ok(head)),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Err(fail(error, false))),
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    let error = WireError::ClosedBeforeResponse;
                    return Poll::Ready(Err(fail(error, !received && !body_taken)));
                }
                Ok(_) => received = true,
                Err(error) => {
                    let retryable = !received && !body_taken && is_reset(&error);
                    return Poll::Ready(Err(fail(WireError::Io(error), retryable)));
                }
            }
        }
    })
    .await?;
    let (response, fields, framing, persistent) = head;
    let complete = uploaded && written == connection.write.len() + data.len();
    let keep_alive = persistent && complete;
    Ok(response.map(|()| Http1Body::new(connection, framing, keep_alive, fields)))
}

/// A reused connection the upstream had closed fails like this.
fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

fn encode_head(
    out: &mut Vec<u8>,
    parts: &Parts,
    added: &[(&HeaderName, HeaderValue)],
    upload: Upload,
) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        // A body being sent carries the framing written below instead.
        if upload != Upload::None && name == header::CONTENT_LENGTH {
            continue;
        }
        encode_field(out, name, value);
    }
    for (name, value) in added {
        encode_field(out, name, value);
    }
    match upload {
        Upload::None => {}
        Upload::Length(length) => encode_length(out, length),
        Upload::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Takes the request body's next frame: framing, chunks and trailers of a
/// chunked body into `out`, a sized body's bytes into `data` as they are.
/// Ready with whether the body has ended.
fn next_frame<B: Body<Data = Bytes> + Unpin>(
    body: &mut B,
    cx: &mut Context<'_>,
    upload: Upload,
    out: &mut Vec<u8>,
    data: &mut Bytes,
) -> Poll<Result<bool, B::Error>> {
    let ended = match ready!(Pin::new(body).poll_frame(cx)) {
        Some(Ok(frame)) => match frame.into_data() {
            Ok(chunk) if upload == Upload::Chunked => {
                encode_chunk(out, &chunk);
                false
            }
            Ok(chunk) => {
                *data = chunk;
                false
            }
            // Trailers end a chunked body; a sized one has no room for them.
            Err(frame) => match (frame.into_trailers(), upload) {
                (Ok(trailers), Upload::Chunked) => {
                    encode_trailers(out, &trailers);
                    true
                }
                _ => false,
            },
        },
        None => {
            if upload == Upload::Chunked {
                out.extend_from_slice(b"0\r\n\r\n");
            }
            true
        }
        Some(Err(error)) => return Poll::Ready(Err(error)),
    };
    Poll::Ready(Ok(ended))
}

fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return; // an empty chunk would end a chunked body
    }
    encode_chunk_size(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn encode_trailers(out: &mut Vec<u8>, trailers: &HeaderMap) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        encode_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head: the response, its fields as lines, how its
/// body is framed, and whether the connection persists after it.
type Head = (Response<()>, RawFields, Framing, bool);

/// Parses a final response head off the front of `read`, skipping interim
/// (1xx) responses; `None` until the head is complete. The framing and
/// persistence decisions are [`semantics::Framing::response`]'s.
fn parse_head(
    read: &mut BytesMut,
    spans: &mut Vec<FieldSpan>,
    method: &Method,
    upgrade: bool,
) -> Result<Option<Head>, WireError> {
    loop {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let length =
            match config.parse_response_with_uninit_headers(&mut parsed, read, &mut fields)? {
                // The limit holds for the whole head, however it arrived.
                httparse::Status::Complete(length) if length > MAX_RESPONSE_HEAD => {
                    return Err(WireError::TooLarge);
                }
                httparse::Status::Complete(length) => length,
                httparse::Status::Partial if read.len() > MAX_RESPONSE_HEAD => {
                    return Err(WireError::TooLarge);
                }
                httparse::Status::Partial => return Ok(None),
            };
        let code = parsed.code.unwrap_or_default();
        let switching = code == 101 && upgrade;
        if (100..200).contains(&code) && !switching {
            if code == 101 {
                return Err(WireError::Invalid(
                    "101 Switching Protocols without an upgrade",
                ));
            }
            read.advance(length);
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| WireError::Invalid("status code"))?;
        let http10 = parsed.version == Some(0);
        // Offsets of each field in the head, which becomes shared bytes.
        let base = read.as_ptr() as usize;
        spans.clear();
        spans.extend(parsed.headers.iter().map(|field| FieldSpan {
            name: (field.name.as_ptr() as usize - base, field.name.len()),
            value: (field.value.as_ptr() as usize - base, field.value.len()),
        }));
        let head = read.split_to(length).freeze();
        let field = |span: &FieldSpan| {
            let (name, name_len) = span.name;
            let (value, value_len) = span.value;
            (
                &head[name..name + name_len],
                &head[value..value + value_len],
            )
        };
        let mut framing = semantics::Framing::default();
        for span in spans.iter() {
            let (name, value) = field(span);
            framing.note(name, value);
        }
        let decided = framing
            .response(method, status, http10)
            .map_err(WireError::Framing)?;
        // The end-to-end fields as lines (see `RawFields`): not those
        // about this connection, nor those its `Connection` names, nor the
        // length, which whoever frames the body writes again.
        let mut raw = RawFields::with_capacity(head.len());
        let named = |name: &[u8]| {
            framing.connection.names_fields
                && spans.iter().any(|span| {
                    let (other, value) = field(span);
                    other.eq_ignore_ascii_case(b"connection")
                        && semantics::named_fields(value).any(|n| n.eq_ignore_ascii_case(name))
                })
        };
        for span in spans.iter() {
            let (name, value) = field(span);
            if semantics::forwarded_as_is(name) && !named(name) {
                raw.push(name, value);
            }
        }
        raw.content_length = framing.forwarded_length();
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = if http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        if switching {
            // The protocol the connection switches to (RFC 9110 §7.8): what
            // follows the head belongs to it, not to HTTP.
            for span in spans.iter() {
                let (name, value) = field(span);
                if name.eq_ignore_ascii_case(b"upgrade")
                    && let Ok(value) = HeaderValue::from_bytes(value)
                {
                    response.headers_mut().append(http::header::UPGRADE, value);
                }
            }
            return Ok(Some((response, raw, Framing::Switched, false)));
        }
        let framing = match decided.body {
            BodyLength::Known(length) => Framing::Length(length),
            BodyLength::Chunked => Framing::Chunked(Chunk::Size),
            BodyLength::UntilClose => Framing::Eof,
        };
        return Ok(Some((response, raw, framing, decided.reusable)));
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
