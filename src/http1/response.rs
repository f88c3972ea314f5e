//! Writing a response on the server side, framed as hyper frames it:
//! lower-case field names (and [`RawFields`](super::RawFields) lines as
//! they came); the handler's `Content-Length`, else the body's exact
//! length, else chunked; no body where [`response_has_body`] says so; a
//! `Date` when the handler set none; `Connection: close` when the
//! connection closes after the response; trailers dropped.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header;
use http::{Method, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::fields::{ResponseFields, encode_chunk_size, encode_field, encode_length};
use super::semantics::{self, ConnectionOptions, final_coding_is_chunked, response_has_body};

/// Body data up to this size is copied behind the head into one write;
/// larger frames go out in a vectored write.
const COPY_LIMIT: usize = 16 * 1024;

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
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future holds its arguments twice (a copy per request)"
)]
pub(super) fn respond<S, B>(
    io: &mut S,
    out: &mut Vec<u8>,
    response: Response<B>,
    method: &Method,
    mut closing: bool,
) -> impl Future<Output = bool>
where
    S: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + ResponseFields,
{
    async move {
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
pub(super) async fn write_all<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    more: &[u8],
) -> io::Result<()> {
    let (mut first, mut second) = (&out[..], more);
    while !first.is_empty() || !second.is_empty() {
        let written = poll_fn(|cx| poll_write_two(Pin::new(&mut *io), cx, first, second)).await?;
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

/// Writes what the socket takes of `first`, then `second`: with a plain
/// write when one of them is empty, else with one vectored write. A
/// `writev` costs the kernel more than a `sendto` of one buffer (it copies
/// the vector in and goes through the file layer), and most heads go out
/// with their small body in the same buffer.
pub(super) fn poll_write_two<S: AsyncWrite + Unpin>(
    io: Pin<&mut S>,
    cx: &mut Context<'_>,
    first: &[u8],
    second: &[u8],
) -> Poll<io::Result<usize>> {
    match (first.is_empty(), second.is_empty()) {
        (_, true) => io.poll_write(cx, first),
        (true, false) => io.poll_write(cx, second),
        (false, false) => io.poll_write_vectored(cx, &[IoSlice::new(first), IoSlice::new(second)]),
    }
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
pub(super) fn http_date(out: &mut Vec<u8>) {
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

/// Answers with `status` and closes: the request cannot be read.
pub(super) async fn refuse<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    status: StatusCode,
) {
    tracing::debug!(%status, "refused a malformed request");
    out.clear();
    encode_status(out, status);
    out.extend_from_slice(b"content-length: 0\r\nconnection: close\r\n\r\n");
    let _ = write_all(io, out, &[]).await;
    let _ = io.shutdown().await;
}
