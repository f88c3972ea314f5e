//! A hyper-util client connector for `http://` and `https://` URIs.
//!
//! [`HttpsConnector`] wraps the plain [`HttpConnector`] (which keeps its
//! connect timeout and TCP settings) and, for `https`, runs a rustls
//! handshake on the new connection: SNI and the verified name come from
//! the URI's host or the configured override. The stream, [`MaybeTls`],
//! tells the pool when ALPN chose `h2` (RFC 7301, RFC 9113 §3.2), so
//! hyper speaks HTTP/2 on it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::client::{Alpn, ClientTls};

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Tcp(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("TLS handshake with {host} failed: {source}")]
    Handshake {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    #[error("https is not configured for this client")]
    NoTls,
}

#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

/// Connects over TCP, then TLS for `https` URIs.
#[derive(Clone)]
pub struct HttpsConnector {
    http: HttpConnector,
    tls: Option<Tls>,
}

impl HttpsConnector {
    /// A connector; `tls` is needed only for `https` URIs.
    pub fn new(mut http: HttpConnector, tls: Option<&ClientTls>, alpn: Alpn) -> Self {
        http.enforce_http(false);
        Self {
            http,
            tls: tls.map(|tls| Tls {
                connector: TlsConnector::from(tls.config(alpn)),
                server_name: tls.server_name().cloned(),
            }),
        }
    }
}

/// The host of `uri` as a TLS server name (brackets of IPv6 removed).
fn server_name(uri: &Uri) -> Result<ServerName<'static>, ConnectError> {
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| ConnectError::ServerName(host.to_owned()))
}

type Connecting = Pin<Box<dyn Future<Output = Result<MaybeTls, ConnectError>> + Send>>;

impl tower_service::Service<Uri> for HttpsConnector {
    type Response = MaybeTls;
    type Error = ConnectError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.http
            .poll_ready(cx)
            .map_err(|e| ConnectError::Tcp(Box::new(e)))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let tls = self.tls.clone();
        let tcp = self.http.call(uri.clone());
        Box::pin(async move {
            let tcp = tcp.await.map_err(|e| ConnectError::Tcp(Box::new(e)))?;
            if !https {
                return Ok(MaybeTls::Plain(tcp));
            }
            let tls = tls.ok_or(ConnectError::NoTls)?;
            let name = match tls.server_name {
                Some(name) => name,
                None => server_name(&uri)?,
            };
            let host = name.to_str().into_owned();
            let stream = tls
                .connector
                .connect(name, tcp.into_inner())
                .await
                .map_err(|source| ConnectError::Handshake { host, source })?;
            Ok(MaybeTls::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// Runs `$call` with `$s` bound to the stream inside `$this` (a pinned
/// [`MaybeTls`]), cleartext or TLS alike.
macro_rules! on_stream {
    ($this:expr, $s:ident => $call:expr) => {
        match $this.get_mut() {
            MaybeTls::Plain($s) => $call,
            MaybeTls::Tls(tls) => {
                let $s = tls.as_mut();
                $call
            }
        }
    };
}

/// A client connection, cleartext or TLS.
pub enum MaybeTls {
    Plain(TokioIo<TcpStream>),
    /// Boxed: a TLS session is large, and connections are few.
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl MaybeTls {
    /// Whether an idle connection can carry another request: the upstream
    /// has not closed it (or sent bytes nobody asked for). Costs no system
    /// call unless the socket became readable while it sat idle.
    pub fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let tcp = match self {
            Self::Plain(stream) => stream.inner(),
            Self::Tls(stream) => stream.inner().get_ref().0,
        };
        if tcp.poll_read_ready(&mut cx).is_pending() {
            return true;
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        // Nothing to read (still open) is the only good answer: EOF, an
        // error, or data before any request was sent all disqualify it.
        AsyncRead::poll_read(Pin::new(self), &mut cx, &mut buf).is_pending()
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s.inner_mut()).poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, s => Pin::new(s.inner_mut()).poll_write(cx, buf))
    }

    // Forwarded: the default writes only the first buffer, and a request
    // head and its body would take a system call each.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, s => Pin::new(s.inner_mut()).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.inner().is_write_vectored(),
            Self::Tls(s) => s.inner().is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s.inner_mut()).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s.inner_mut()).poll_shutdown(cx))
    }
}

impl Connection for MaybeTls {
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(stream) => stream.connected(),
            Self::Tls(stream) => {
                let (tcp, session) = stream.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl Write for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_host() {
        let name = |uri: &str| server_name(&uri.parse().unwrap()).map(|n| n.to_str().into_owned());
        assert_eq!(
            name("https://zipkin.example:443/x").unwrap(),
            "zipkin.example"
        );
        assert_eq!(name("https://127.0.0.1:8443").unwrap(), "127.0.0.1");
        assert_eq!(name("https://[::1]:8443").unwrap(), "::1");
    }
}
