//! The upstream's response body, read off its connection: sized,
//! chunked (RFC 9112 §7.1, with trailers), or to the end of the
//! connection, as [`super::semantics::Framing::response`] decided. The
//! connection goes back to its [`Home`] when the body ended cleanly on a
//! persistent connection with nothing left over.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use super::client::WireError;
use super::connection::{Connection, Home, Wire};
use super::fields::{RawFields, ResponseFields};
use super::semantics::{self, MAX_FIELDS, MAX_RESPONSE_HEAD};
use super::server::Prefixed;

/// How the rest of the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Eof,
    Done,
    /// `101 Switching Protocols`: no body; the connection is the caller's
    /// ([`Http1Body::take_switched`]).
    Switched,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section.
    Trailers,
}

/// The upstream's response body, read off its connection.
pub struct Http1Body<H> {
    /// `None` once the body has ended.
    connection: Option<Box<Connection>>,
    state: Framing,
    /// The connection may carry another request once the body ends.
    keep_alive: bool,
    home: Option<H>,
    /// The last poll gave data (hyper has not flushed it yet).
    delivered: bool,
    /// An error held back for one poll, so hyper first sends what came before it.
    failed: Option<WireError>,
    /// The response's fields, when they came as lines (see [`RawFields`]).
    fields: Option<RawFields>,
}

impl<H> ResponseFields for Http1Body<H> {
    fn fields(&self) -> Option<&RawFields> {
        self.fields.as_ref()
    }

    fn take_fields(&mut self) -> Option<RawFields> {
        self.fields.take()
    }
}

impl<H> std::fmt::Debug for Http1Body<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Body")
            .field("state", &self.state)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<H> Http1Body<H> {
    /// The body of a response just read on `connection`.
    pub(super) fn new(
        connection: Box<Connection>,
        state: Framing,
        keep_alive: bool,
        fields: RawFields,
    ) -> Self {
        Self {
            connection: Some(connection),
            state,
            keep_alive,
            home: None,
            delivered: false,
            failed: None,
            fields: Some(fields),
        }
    }
}

impl<H: Home> Http1Body<H> {
    /// Where the connection goes when this body ends cleanly.
    pub fn set_home(&mut self, home: H) {
        self.home = Some(home);
        // hyper never polls a body that is empty from the start.
        if matches!(self.state, Framing::Done | Framing::Length(0)) {
            self.finish();
        }
    }

    /// The body ended cleanly: the connection goes home if it can.
    fn finish(&mut self) {
        if self.state == Framing::Switched {
            // The connection waits for `take_switched`.
            return;
        }
        self.state = Framing::Done;
        if let Some(mut connection) = self.connection.take()
            && self.keep_alive
            && connection.read.is_empty()
            && let Some(home) = self.home.take()
        {
            connection.shed_buffers();
            home.release(connection);
        }
    }

    /// After `101 Switching Protocols`: the connection, with whatever the
    /// upstream already sent in the new protocol in front.
    pub fn take_switched(&mut self) -> Option<Prefixed<Wire>> {
        if self.state != Framing::Switched {
            return None;
        }
        self.state = Framing::Done;
        let mut connection = self.connection.take()?;
        let early = connection.read.split().freeze();
        Some(Prefixed::new(early, connection.io))
    }

    /// The next frame; `Ok(None)` at the end.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame<Bytes>>, WireError>> {
        loop {
            let Some(conn) = self.connection.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            match self.state {
                Framing::Done | Framing::Length(0) | Framing::Switched => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    let wanted = usize::try_from(left).unwrap_or(usize::MAX);
                    if conn.read.is_empty() && ready!(conn.poll_fill_up_to(cx, wanted))? == 0 {
                        return Poll::Ready(Err(WireError::Truncated));
                    }
                    let n = conn
                        .read
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = conn.read.split_to(n).freeze();
                    let left = left - n as u64;
                    if let Framing::Length(_) = self.state {
                        self.state = Framing::Length(left);
                        if left == 0 {
                            self.finish();
                        }
                    } else {
                        let next = if left == 0 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left)
                        };
                        self.state = Framing::Chunked(next);
                    }
                    return Poll::Ready(Ok(Some(Frame::data(data))));
                }
                Framing::Eof => {
                    if conn.read.is_empty() && ready!(conn.poll_fill(cx))? == 0 {
                        self.keep_alive = false;
                        self.finish();
                        return Poll::Ready(Ok(None));
                    }
                    let data = conn.read.split().freeze();
                    return Poll::Ready(Ok(Some(Frame::data(data))));
                }
                Framing::Chunked(chunk) => match decode_chunked(&mut conn.read, chunk)? {
                    Decoded::Next(next) => self.state = Framing::Chunked(next),
                    Decoded::End(trailers) => {
                        self.finish();
                        return Poll::Ready(Ok(trailers.map(Frame::trailers)));
                    }
                    Decoded::NeedMore => {
                        if ready!(conn.poll_fill(cx))? == 0 {
                            return Poll::Ready(Err(WireError::Truncated));
                        }
                    }
                },
            }
        }
    }
}

/// One step of the chunked decoder (data is taken by the caller).
pub(super) enum Decoded {
    Next(Chunk),
    /// The body ended, with these trailers if it had any.
    End(Option<HeaderMap>),
    NeedMore,
}

pub(super) fn decode_chunked(read: &mut BytesMut, chunk: Chunk) -> Result<Decoded, WireError> {
    match chunk {
        Chunk::Size => {
            let Some(end) = read.iter().position(|&b| b == b'\n') else {
                return if read.len() > MAX_RESPONSE_HEAD {
                    Err(WireError::TooLarge)
                } else {
                    Ok(Decoded::NeedMore)
                };
            };
            let size =
                semantics::chunk_size(&read[..=end]).ok_or(WireError::Invalid("chunk size"))?;
            read.advance(end + 1);
            Ok(Decoded::Next(if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            }))
        }
        Chunk::DataEnd => match read.get(..2) {
            None => Ok(Decoded::NeedMore),
            Some(b"\r\n") => {
                read.advance(2);
                Ok(Decoded::Next(Chunk::Size))
            }
            Some(_) => Err(WireError::Invalid("chunk data not followed by CRLF")),
        },
        Chunk::Trailers => {
            let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
            match httparse::parse_headers(read, &mut fields)? {
                httparse::Status::Partial if read.len() > MAX_RESPONSE_HEAD => {
                    Err(WireError::TooLarge)
                }
                httparse::Status::Partial => Ok(Decoded::NeedMore),
                httparse::Status::Complete((length, fields)) => {
                    let mut trailers = HeaderMap::new();
                    for field in fields {
                        let name = HeaderName::from_bytes(field.name.as_bytes())
                            .map_err(|_| WireError::Invalid("trailer name"))?;
                        let value = HeaderValue::from_bytes(field.value)
                            .map_err(|_| WireError::Invalid("trailer value"))?;
                        trailers.append(name, value);
                    }
                    read.advance(length);
                    Ok(Decoded::End((!trailers.is_empty()).then_some(trailers)))
                }
            }
        }
        // Chunk data is taken by the body before it calls the decoder.
        Chunk::Data(_) => Err(WireError::Invalid("chunk data where a chunk line belongs")),
    }
}

impl<H: Home + Unpin> Body for Http1Body<H> {
    type Data = Bytes;
    type Error = WireError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        let this = self.get_mut();
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match this.poll_next(cx) {
            Poll::Pending => {
                this.delivered = false;
                Poll::Pending
            }
            Poll::Ready(Ok(frame)) => {
                this.delivered = frame.is_some();
                Poll::Ready(frame.map(Ok))
            }
            Poll::Ready(Err(error)) => {
                // A broken body leaves the connection unusable.
                this.connection = None;
                this.state = Framing::Done;
                if std::mem::take(&mut this.delivered) {
                    // hyper sends the data it has only when the body waits:
                    // wait once, so the downstream gets what the upstream sent.
                    this.failed = Some(error);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none()
            && matches!(
                self.state,
                Framing::Done | Framing::Length(0) | Framing::Switched
            )
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
