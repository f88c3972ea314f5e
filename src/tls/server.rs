//! TLS termination for a listener: the handshake of one accepted
//! connection, and the facts about it that spans record.
//!
//! [`TlsServer::accept`] runs inside the per-connection task (never in the
//! accept loop), bounded by the header-read timeout, so a slow or broken
//! client holds only its own task. Failures are counted by reason in
//! `tracehop_tls_handshake_failures_total` and logged at debug level only:
//! a port scanner must not flood the log. A cleartext HTTP request on the
//! TLS port gets a plain `400` saying so, as nginx does, instead of a TLS
//! alert the client cannot read.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{identity, provider};
use crate::metrics::TlsMetrics;
use crate::span::Tag;

/// ALPN protocols offered, preferred first (RFC 7301; RFC 9113 §3.2 "h2").
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The answer to a cleartext request on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: 37\r\n\r\n\
This port expects TLS: use https://\n";

/// The serving certificate, swappable while connections are open: each
/// handshake takes the current `Arc`, existing sessions keep theirs.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// A store serving `key`.
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// Serves `key` to every handshake from now on.
    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }

    /// The certificate being served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Whether and how clients must authenticate.
pub enum ClientVerification {
    Off,
    Optional(Arc<rustls::RootCertStore>),
    Required(Arc<rustls::RootCertStore>),
}

/// Facts about one TLS connection, as span tags (OpenTelemetry `tls.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// `tls.protocol.version`: `1.2` or `1.3`.
    pub version: &'static str,
    /// `tls.cipher`: the IANA name.
    pub cipher: &'static str,
    /// `tls.next_protocol`: the ALPN protocol chosen.
    pub alpn: Option<&'static str>,
    /// The verified client certificate's identity, when one was presented.
    pub client: Option<identity::PeerIdentity>,
}

impl TlsInfo {
    /// The span tags for this connection.
    pub fn tags(&self) -> impl Iterator<Item = Tag> + '_ {
        let tag = |key: &'static str, value: &'static str| Tag {
            key: key.into(),
            value: value.into(),
        };
        let fixed = [
            Some(tag("tls.protocol.name", "tls")),
            Some(tag("tls.protocol.version", self.version)),
            Some(tag("tls.cipher", self.cipher)),
            self.alpn.map(|alpn| tag("tls.next_protocol", alpn)),
        ];
        fixed
            .into_iter()
            .flatten()
            .chain(self.client.iter().flat_map(identity::PeerIdentity::tags))
    }
}

/// Terminates TLS for one listener.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer")
    }
}

/// Why a server TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error("cannot use the client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS versions: {0}")]
    Versions(#[from] rustls::Error),
}

/// The rustls setting of a TLS listener: presents whatever `store` holds
/// at each handshake, offers `h2` and `http/1.1`.
pub fn server_config(
    store: Arc<CertStore>,
    clients: ClientVerification,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?;
    let verifier = |roots, optional: bool| {
        let builder = WebPkiClientVerifier::builder_with_provider(roots, Arc::new(provider()));
        if optional {
            builder.allow_unauthenticated().build()
        } else {
            builder.build()
        }
    };
    let builder = match clients {
        ClientVerification::Off => builder.with_no_client_auth(),
        ClientVerification::Optional(roots) => {
            builder.with_client_cert_verifier(verifier(roots, true)?)
        }
        ClientVerification::Required(roots) => {
            builder.with_client_cert_verifier(verifier(roots, false)?)
        }
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

impl TlsServer {
    /// Terminates TLS with `config`, counting failures in `metrics`.
    pub fn new(config: Arc<ServerConfig>, metrics: TlsMetrics) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
            metrics,
        }
    }

    /// Runs the handshake on an accepted connection within `timeout`.
    /// `None` when it failed (counted, logged at debug).
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Option<Duration>,
    ) -> Option<(TlsStream<TcpStream>, Arc<TlsInfo>)> {
        let peer = stream.peer_addr().ok();
        let handshake = self.handshake(stream);
        let outcome = match timeout {
            Some(limit) => tokio::time::timeout(limit, handshake)
                .await
                .unwrap_or(Err(Failure::Timeout)),
            None => handshake.await,
        };
        match outcome {
            Ok(done) => Some(done),
            Err(failure) => {
                self.metrics.handshake_failure(failure.reason());
                tracing::debug!(?peer, reason = failure.reason(), "TLS handshake failed");
                None
            }
        }
    }

    async fn handshake(
        &self,
        mut stream: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, Arc<TlsInfo>), Failure> {
        if looks_like_plain_http(&stream).await {
            answer_plain_http(&mut stream).await;
            return Err(Failure::PlainHttp);
        }
        let tls = self.acceptor.accept(stream).await.map_err(Failure::from)?;
        let info = connection_info(tls.get_ref().1);
        Ok((tls, Arc::new(info)))
    }
}

/// A TLS record starts with content type 22 (RFC 8446 §5.1); an HTTP/1.x
/// request starts with an upper-case method name.
async fn looks_like_plain_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// Reads what the client sent (so closing does not reset the connection
/// before it reads the answer), answers 400 and closes.
async fn answer_plain_http(stream: &mut TcpStream) {
    let mut request = [0u8; 4096];
    let _ = stream.try_read(&mut request);
    let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
    let _ = stream.shutdown().await;
}

fn connection_info(conn: &rustls::ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or("unknown", |suite| iana_cipher_name(suite.suite()));
    let alpn = match conn.alpn_protocol() {
        Some(b"h2") => Some("h2"),
        Some(b"http/1.1") => Some("http/1.1"),
        _ => None,
    };
    let client = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(identity::PeerIdentity::of);
    TlsInfo {
        version,
        cipher,
        alpn,
        client,
    }
}

/// rustls names TLS 1.3 suites `TLS13_*`; IANA (and OpenTelemetry's
/// `tls.cipher`) call them `TLS_*` (RFC 8446 §B.4). TLS 1.2 names match.
fn iana_cipher_name(suite: rustls::CipherSuite) -> &'static str {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        S::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        S::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        other => other.as_str().unwrap_or("unknown"),
    }
}

/// Why a handshake failed: the `reason` label values.
#[derive(Debug)]
enum Failure {
    Timeout,
    PlainHttp,
    NoClientCertificate,
    BadCertificate,
    AlertReceived,
    Incompatible,
    Protocol,
    Closed,
    Other,
}

impl Failure {
    fn reason(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::PlainHttp => "plain_http",
            Self::NoClientCertificate => "no_client_certificate",
            Self::BadCertificate => "bad_client_certificate",
            Self::AlertReceived => "alert_received",
            Self::Incompatible => "incompatible",
            Self::Protocol => "protocol_error",
            Self::Closed => "closed",
            Self::Other => "other",
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        if let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return match tls {
                rustls::Error::NoCertificatesPresented => Self::NoClientCertificate,
                rustls::Error::InvalidCertificate(_) => Self::BadCertificate,
                rustls::Error::AlertReceived(_) => Self::AlertReceived,
                rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
                    Self::Incompatible
                }
                rustls::Error::InvalidMessage(_)
                | rustls::Error::InappropriateMessage { .. }
                | rustls::Error::InappropriateHandshakeMessage { .. }
                | rustls::Error::PeerMisbehaved(_) => Self::Protocol,
                _ => Self::Other,
            };
        }
        match error.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                Self::Closed
            }
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_reason_is_a_label_value_created_at_start() {
        let failures = [
            Failure::Timeout,
            Failure::PlainHttp,
            Failure::NoClientCertificate,
            Failure::BadCertificate,
            Failure::AlertReceived,
            Failure::Incompatible,
            Failure::Protocol,
            Failure::Closed,
            Failure::Other,
        ];
        for failure in failures {
            assert!(crate::metrics::TLS_HANDSHAKE_FAILURES.contains(&failure.reason()));
        }
    }

    #[test]
    fn cipher_names_are_iana_names() {
        use rustls::CipherSuite as S;
        assert_eq!(
            iana_cipher_name(S::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            iana_cipher_name(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
    }

    #[test]
    fn handshake_errors_map_to_bounded_reasons() {
        let tls = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cases = [
            (
                tls(rustls::Error::NoCertificatesPresented),
                "no_client_certificate",
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
                "bad_client_certificate",
            ),
            (tls(rustls::Error::NoApplicationProtocol), "incompatible"),
            (
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                "closed",
            ),
            (std::io::Error::other("odd"), "other"),
        ];
        for (error, want) in cases {
            assert_eq!(Failure::from(error).reason(), want);
        }
    }
}
