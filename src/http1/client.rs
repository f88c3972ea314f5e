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
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::fields::{RawFields, ResponseFields, encode_chunk_size, encode_field, encode_length};
use super::semantics::{self, BodyLength, MAX_FIELDS, MAX_RESPONSE_HEAD};
use super::server::Prefixed;
use crate::tls::connector::MaybeTls;

/// Free space the read buffer gets before each read.
const READ_SPACE: usize = 8 * 1024;

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

/// One open HTTP/1.1 connection to the upstream, between requests.
pub struct Connection {
    io: Wire,
    /// Read and not yet used.
    read: BytesMut,
    /// The request head and body chunks being written (kept for reuse).
    write: Vec<u8>,
    /// Where each response header field sits in the head (kept for reuse).
    fields: Vec<FieldSpan>,
}

/// Offsets of a header field's name and value in the response head.
#[derive(Clone, Copy)]
struct FieldSpan {
    name: (usize, usize),
    value: (usize, usize),
}

impl Connection {
    pub fn new(io: MaybeTls) -> Self {
        Self::on(Wire::Net(io))
    }

    /// A connection over an in-memory stream (`tokio::io::duplex`), for
    /// fuzzing and tests that play the upstream without a socket.
    #[doc(hidden)]
    pub fn over_stream(io: impl AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static) -> Self {
        Self::on(Wire::Piped(Box::new(io)))
    }

    fn on(io: Wire) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Whether this idle connection can carry another request.
    pub fn is_reusable(&mut self) -> bool {
        self.read.is_empty() && self.io.is_reusable()
    }

    /// Reads more into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_SPACE / 4 {
            self.read.reserve(READ_SPACE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }
}

/// What a [`Connection`] runs on: the network, or an in-memory stream
/// ([`Connection::over_stream`]).
pub enum Wire {
    Net(MaybeTls),
    Piped(Box<dyn Stream>),
}

/// Any byte stream a [`Connection`] can run on.
pub trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for S {}

impl Wire {
    /// Whether an idle connection can carry another request (see
    /// [`MaybeTls::is_reusable`]): nothing to read is the only good answer.
    fn is_reusable(&mut self) -> bool {
        match self {
            Self::Net(io) => io.is_reusable(),
            Self::Piped(io) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut byte = [0u8; 1];
                let mut buf = ReadBuf::new(&mut byte);
                Pin::new(io).poll_read(&mut cx, &mut buf).is_pending()
            }
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Net(io) => Pin::new(io).poll_read(cx, buf),
            Self::Piped(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Net(io) => Pin::new(io).poll_write(cx, buf),
            Self::Piped(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Net(io) => Pin::new(io).poll_flush(cx),
            Self::Piped(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Net(io) => Pin::new(io).poll_shutdown(cx),
            Self::Piped(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// Where a response body hands its connection when it ended cleanly.
pub trait Home {
    fn release(self, connection: Box<Connection>);
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
    added: &[(HeaderName, HeaderValue)],
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
    let upgrade = {
        let connection = parts.headers.get_all(http::header::CONNECTION).iter();
        semantics::wants_upgrade(
            false,
            semantics::ConnectionOptions::of(connection.map(HeaderValue::as_bytes)),
            parts.headers.contains_key(http::header::UPGRADE),
        )
    };
    let conn = &mut *connection;
    conn.write.clear();
    encode_head(&mut conn.write, parts, added, upload);
    let mut written = 0;
    let mut flushed = false;
    let mut uploaded = upload == Upload::None;
    let mut body_taken = false;
    let mut received = false;
    let fail = |error: WireError, retryable: bool| ExchangeError {
        cause: Cause::Upstream(error),
        retryable,
    };
    let head = poll_fn(|cx| {
        // The request, as far as the socket and the body allow.
        loop {
            if written < conn.write.len() {
                match Pin::new(&mut conn.io).poll_write(cx, &conn.write[written..]) {
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
            written = 0;
            body_taken = true;
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => encode_data(&mut conn.write, &data, upload),
                    Err(frame) => {
                        // Trailers end a chunked body; a sized one has no room for them.
                        if let (Ok(trailers), Upload::Chunked) = (frame.into_trailers(), upload) {
                            encode_trailers(&mut conn.write, &trailers);
                            uploaded = true;
                        }
                    }
                },
                Poll::Ready(None) => {
                    if upload == Upload::Chunked {
                        conn.write.extend_from_slice(b"0\r\n\r\n");
                    }
                    uploaded = true;
                }
                Poll::Ready(Some(Err(error))) => {
                    let cause = Cause::RequestBody(error);
                    return Poll::Ready(Err(ExchangeError {
                        cause,
                        retryable: false,
                    }));
                }
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
    let complete = uploaded && written == connection.write.len();
    Ok(response.map(|()| Http1Body {
        connection: Some(connection),
        state: framing,
        keep_alive: persistent && complete,
        home: None,
        delivered: false,
        failed: None,
        fields: Some(fields),
    }))
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
    added: &[(HeaderName, HeaderValue)],
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

fn encode_data(out: &mut Vec<u8>, data: &[u8], upload: Upload) {
    if data.is_empty() {
        return; // an empty chunk would end a chunked body
    }
    if upload == Upload::Chunked {
        encode_chunk_size(out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
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

/// How the rest of the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
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
enum Chunk {
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
        if let Some(connection) = self.connection.take()
            && self.keep_alive
            && connection.read.is_empty()
            && let Some(home) = self.home.take()
        {
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
                    if conn.read.is_empty() && ready!(conn.poll_fill(cx))? == 0 {
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
enum Decoded {
    Next(Chunk),
    /// The body ended, with these trailers if it had any.
    End(Option<HeaderMap>),
    NeedMore,
}

fn decode_chunked(read: &mut BytesMut, chunk: Chunk) -> Result<Decoded, WireError> {
    match chunk {
        Chunk::Size => {
            let Some(end) = read.iter().position(|&b| b == b'\n') else {
                return if read.len() > MAX_RESPONSE_HEAD {
                    Err(WireError::TooLarge)
                } else {
                    Ok(Decoded::NeedMore)
                };
            };
            let size = chunk_size(&read[..=end]).ok_or(WireError::Invalid("chunk size"))?;
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

/// The size on a chunk-size line (`1a;ext=1\r\n`), hex, at most 16 digits.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |n, &d| {
        let digit = (d as char).to_digit(16)?;
        Some((n << 4) | u64::from(digit))
    })
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::Request;
    use std::collections::VecDeque;

    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;
    use crate::http1::BoxError;

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

    #[tokio::test]
    async fn added_fields_follow_the_request_s_own() {
        let (connection, mut requests) =
            upstream(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let (parts, mut body) = get(Method::GET);
        let added = [(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_static("00-1-2-01"),
        )];
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

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(chunk_size(b"FF;name=value\r\n"), Some(255));
        assert_eq!(chunk_size(b"0 ; x\r\n"), Some(0));
        assert_eq!(chunk_size(b"ffffffffffffffff\r\n"), Some(u64::MAX));
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"1 2\r\n",
            b"10000000000000000\r\n",
            b"-1\r\n",
        ] {
            assert_eq!(chunk_size(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
