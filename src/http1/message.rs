//! The message types every HTTP path shares: the request body handlers
//! see, whichever connection read it, and the boxed error of bodies.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use super::path::ServedBy;

/// Error type of boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request's body: streamed by hyper, or, for a request served on the
/// HTTP/1.1 fast path, read with its head.
#[derive(Debug)]
pub struct RequestBody {
    kind: BodyKind,
    served: ServedBy,
}

#[derive(Debug)]
enum BodyKind {
    Streamed(Incoming),
    Read(Option<Bytes>),
}

impl RequestBody {
    /// A body already read in full, by this crate's connection.
    pub fn read(bytes: Bytes) -> Self {
        Self {
            kind: BodyKind::Read((!bytes.is_empty()).then_some(bytes)),
            served: ServedBy::Direct,
        }
    }

    /// A body hyper streams, for a request hyper read.
    pub fn streamed(body: Incoming, served: ServedBy) -> Self {
        Self {
            kind: BodyKind::Streamed(body),
            served,
        }
    }

    /// Which implementation read the request.
    pub fn served_by(&self) -> ServedBy {
        self.served
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            BodyKind::Streamed(body) => Pin::new(body).poll_frame(cx),
            BodyKind::Read(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Streamed(body) => body.is_end_stream(),
            BodyKind::Read(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Streamed(body) => body.size_hint(),
            BodyKind::Read(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
