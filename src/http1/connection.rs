//! One HTTP/1.1 connection to an upstream, between and during exchanges:
//! its byte stream (the network, or an in-memory stream for fuzzing), its
//! read buffer, and where its response body returns it ([`Home`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::buffers;
use crate::tls::connector::MaybeTls;

/// One open HTTP/1.1 connection to the upstream, between requests.
pub struct Connection {
    pub(super) io: Wire,
    /// Read and not yet used.
    pub(super) read: BytesMut,
    /// The request head and body chunks being written (kept for reuse).
    pub(super) write: Vec<u8>,
    /// Where each response header field sits in the head (kept for reuse).
    pub(super) fields: Vec<FieldSpan>,
}

/// Offsets of a header field's name and value in the response head.
#[derive(Clone, Copy)]
pub(super) struct FieldSpan {
    pub(super) name: (usize, usize),
    pub(super) value: (usize, usize),
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

    /// Lets the buffers go between exchanges: a connection kept idle with
    /// an idle downstream connection then holds its socket and little
    /// else. They are taken again, once, by the next exchange.
    /// They go to the thread's spares ([`buffers`]).
    pub(super) fn shed_buffers(&mut self) {
        if self.read.is_empty() {
            buffers::give(&mut self.read);
        }
        buffers::give(&mut self.write);
        buffers::give(&mut self.fields);
    }

    /// Reads more into the buffer; `Ok(0)` at end of stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.poll_fill_up_to(cx, buffers::READ)
    }

    /// Reads more, with room for up to `wanted` bytes (a body's remaining
    /// length) but at least [`buffers::READ`] and at most
    /// [`buffers::BODY_READ`]: a large body comes in a few large reads
    /// instead of one per 8 KiB, and leaves the same way (a read larger
    /// than the response writer's copy limit goes out without a copy).
    /// The buffer so grown is freed, not kept, when the connection goes
    /// idle ([`buffers`]).
    pub(super) fn poll_fill_up_to(
        &mut self,
        cx: &mut Context<'_>,
        wanted: usize,
    ) -> Poll<io::Result<usize>> {
        if self.read.capacity() == 0 {
            self.read = buffers::take();
        }
        let wanted = wanted.clamp(buffers::READ, buffers::BODY_READ);
        if self.read.capacity() - self.read.len() < wanted / 4 {
            self.read.reserve(wanted);
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

    // Forwarded: the default writes only the first buffer.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Net(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Piped(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Net(io) => io.is_write_vectored(),
            Self::Piped(io) => io.is_write_vectored(),
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
