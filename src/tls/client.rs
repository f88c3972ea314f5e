//! TLS client settings for an upstream or the collector: which roots to
//! trust, which name to check, which certificate to present.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

use super::pem::{self, PemError};
use super::provider;
use crate::config::{ClientTlsConfig, Trust};

/// Why a client TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// A file named under `key` (`ca_file`, `client_cert`, `client_key`).
    #[error("{source}")]
    File {
        key: &'static str,
        #[source]
        source: PemError,
    },
    #[error("the system trust store holds no usable certificate")]
    NoSystemRoots,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

impl ClientTlsError {
    /// The key, under the section, that the problem belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            Self::File { key, .. } => key,
            Self::NoSystemRoots => "trust",
            Self::Rustls(_) => "client_key",
        }
    }
}

fn at(key: &'static str) -> impl Fn(PemError) -> ClientTlsError {
    move |source| ClientTlsError::File { key, source }
}

/// A ready TLS client setting, cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Without ALPN; each HTTP client adds its own.
    config: Arc<ClientConfig>,
    /// SNI and verified name override.
    server_name: Option<ServerName<'static>>,
}

/// The ALPN protocol an HTTP client offers (RFC 7301).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    Http2,
}

impl ClientTls {
    /// Builds from a validated section; `None` means the defaults
    /// (webpki roots, no client certificate).
    pub fn load(config: Option<&ClientTlsConfig>) -> Result<Self, ClientTlsError> {
        let default = ClientTlsConfig {
            trust: Trust::Webpki,
            server_name: None,
            client_cert: None,
        };
        let config = config.unwrap_or(&default);
        let roots = roots(&config.trust)?;
        let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let tls = match &config.client_cert {
            None => builder.with_no_client_auth(),
            Some(pair) => {
                let cert_pem = pem::read(&pair.cert).map_err(at("client_cert"))?;
                let key_pem = pem::read(&pair.key).map_err(at("client_key"))?;
                let chain = pem::certificates(&cert_pem, &pair.cert).map_err(at("client_cert"))?;
                // Checked first for an error that names both files.
                pem::certified_key(&cert_pem, &key_pem, &pair.cert, &pair.key)
                    .map_err(at("client_key"))?;
                let key = pem::private_key(&key_pem, &pair.key).map_err(at("client_key"))?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        let server_name = config
            .server_name
            .as_deref()
            .and_then(|name| ServerName::try_from(name.to_owned()).ok());
        Ok(Self {
            config: Arc::new(tls),
            server_name,
        })
    }

    /// The rustls setting offering `alpn`.
    pub fn config(&self, alpn: Alpn) -> Arc<ClientConfig> {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![match alpn {
            Alpn::Http1 => b"http/1.1".to_vec(),
            Alpn::Http2 => b"h2".to_vec(),
        }];
        Arc::new(config)
    }

    /// The configured server name override.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// This setting, checking `host` when no server name is configured:
    /// for a connection made to one of `host`'s addresses, where the URI
    /// names the address (`export.resolve: dns`).
    pub fn naming(mut self, host: &str) -> Self {
        if self.server_name.is_none() {
            self.server_name = ServerName::try_from(host.to_owned()).ok();
        }
        self
    }
}

fn roots(trust: &Trust) -> Result<Arc<RootCertStore>, ClientTlsError> {
    match trust {
        Trust::Webpki => Ok(Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })),
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "skipping a system root certificate");
            }
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(ClientTlsError::NoSystemRoots);
            }
            Ok(Arc::new(roots))
        }
        Trust::CaFile(path) => pem::ca_store(Path::new(path)).map_err(at("ca_file")),
    }
}
