//! TLS: inbound termination (optional mTLS, certificate rotation), HTTPS to
//! upstreams and the collector, and the collector's secret headers.
//!
//! Everything the configuration names *outside itself* — PEM files, CA
//! bundles, secret files, environment variables — is read here, in one
//! step after the pure `config::load`: [`load_material`] turns a validated
//! [`Config`] into ready rustls settings, or into every problem found, each
//! under the YAML key that named the file. `app::start` and
//! `tracehop check-config` both run it.
//!
//! - [`server`]: the handshake of an accepted connection and the
//!   [`TlsInfo`] that spans record (`tls.protocol.version`, `tls.cipher`,
//!   the client's identity from [`identity`]);
//! - [`reload`]: the poller that swaps the served certificate when its
//!   files change (spawned and owned by `app`);
//! - [`client`] and [`connector`]: trust roots (webpki, system, a CA file),
//!   SNI, client certificates and the hyper-util connector both the proxy
//!   and the exporter use;
//! - [`pem`], [`x509`]: file parsing and the two certificate facts rustls
//!   does not expose; [`secret`]: `export.headers` values.
//!
//! Only the `ring` provider is compiled in.

pub mod client;
pub mod connector;
pub mod identity;
pub mod pem;
pub mod reload;
pub mod secret;
pub mod server;
pub mod x509;

pub use client::{Alpn, ClientTls};
pub use connector::HttpsConnector;
pub use reload::CertReloader;
pub use server::{TlsInfo, TlsServer};

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use crate::config::{
    ClientAuth, ClientTlsConfig, Config, ConfigError, ConfigErrors, ExportConfig, Exporter, Scheme,
    ServerTlsConfig,
};
use crate::metrics::TlsMetrics;
use server::{CertStore, ClientVerification};

/// The one crypto provider tracehop uses.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Everything loaded from outside the config file, ready to use.
pub struct TlsMaterial {
    /// TLS termination of the inbound listener.
    pub inbound: Option<InboundTls>,
    /// For an `https://` inbound upstream.
    pub inbound_upstream: Option<ClientTls>,
    /// For each outbound route (config order) with an `https://` upstream.
    pub outbound: Vec<Option<ClientTls>>,
    /// What reaching each export destination takes.
    pub export: ExportAccess,
    /// Problems that do not stop tracehop (an expired certificate).
    pub warnings: Vec<String>,
}

/// What reaching one collector takes beyond its config section: the
/// loaded TLS setting and the resolved extra headers.
#[derive(Clone, Debug, Default)]
pub struct CollectorAccess {
    /// For an `https://` collector; `None` uses the built-in webpki roots.
    pub tls: Option<ClientTls>,
    /// Sent on every upload; values are sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// [`CollectorAccess`] of each export destination.
#[derive(Clone, Debug, Default)]
pub struct ExportAccess {
    pub zipkin: CollectorAccess,
    pub otlp: CollectorAccess,
}

impl ExportAccess {
    /// The access of `exporter`'s destination.
    pub fn of(&self, exporter: Exporter) -> &CollectorAccess {
        match exporter {
            Exporter::Zipkin => &self.zipkin,
            Exporter::Otlp => &self.otlp,
        }
    }
}

/// The inbound listener's TLS setting and its certificate store.
pub struct InboundTls {
    pub config: Arc<ServerConfig>,
    store: Arc<CertStore>,
    settings: ServerTlsConfig,
    /// File contents loaded, for the reloader to compare against.
    seen: (Vec<u8>, Vec<u8>),
}

impl InboundTls {
    /// The TLS server for the listener and the poller that rotates its
    /// certificate; both report to `metrics`.
    pub fn start(self, metrics: &TlsMetrics) -> (Arc<TlsServer>, CertReloader) {
        record_expiry(metrics, &self.store.current());
        let server = Arc::new(TlsServer::new(self.config, metrics.clone()));
        let reloader = CertReloader {
            store: self.store,
            cert: self.settings.cert,
            key: self.settings.key,
            interval: self.settings.reload_interval,
            seen: self.seen,
            metrics: metrics.clone(),
            unreadable: false,
        };
        (server, reloader)
    }
}

fn record_expiry(metrics: &TlsMetrics, key: &CertifiedKey) {
    let not_after = key.cert.first().and_then(|leaf| x509::not_after(leaf));
    if let Some(seconds) = not_after.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
        metrics
            .certificate_expiry
            .set(i64::try_from(seconds.as_secs()).unwrap_or(i64::MAX));
    }
}

/// Loads every file and variable the config names, reading the process
/// environment.
pub fn load_material(config: &Config) -> Result<TlsMaterial, ConfigErrors> {
    load_material_with(config, &|name| std::env::var(name).ok())
}

/// [`load_material`] with environment variables read through `env`.
pub fn load_material_with(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TlsMaterial, ConfigErrors> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let inbound = config.inbound.tls.as_ref().and_then(|settings| {
        inbound_tls(settings, &mut warnings)
            .map_err(|e| problems.extend(e))
            .ok()
    });
    let mut client = |at: &str, https: bool, settings: Option<&ClientTlsConfig>| {
        if !https {
            return None;
        }
        ClientTls::load(settings)
            .map_err(|error| {
                problems.push(ConfigError {
                    path: format!("{at}.{}", error.key())
                        .trim_end_matches('.')
                        .to_owned(),
                    message: error.to_string(),
                })
            })
            .ok()
    };
    let up = &config.inbound;
    let inbound_upstream = client(
        "inbound.upstream_tls",
        up.upstream.scheme == Scheme::Https,
        up.upstream_tls.as_ref(),
    );
    let outbound = config.outbound.routes.iter().enumerate().map(|(i, route)| {
        client(
            &format!("outbound.routes[{i}].upstream_tls"),
            route.upstream.scheme == Scheme::Https,
            route.upstream_tls.as_ref(),
        )
    });
    let outbound: Vec<_> = outbound.collect();
    let mut export = ExportAccess::default();
    let mut header_problems = Vec::new();
    if let ExportConfig::Enabled(settings) = &config.export {
        for (exporter, destination) in settings.destinations() {
            let at = match exporter {
                Exporter::Zipkin => "export",
                Exporter::Otlp => "export.otlp",
            };
            let https = destination
                .urls
                .iter()
                .any(|url| url.scheme == Scheme::Https);
            let tls = client(&format!("{at}.tls"), https, destination.tls.as_ref());
            let headers =
                secret::resolve_headers(&format!("{at}.headers"), &destination.headers, env)
                    .unwrap_or_else(|errors| {
                        header_problems.extend(errors);
                        Vec::new()
                    });
            let access = CollectorAccess { tls, headers };
            match exporter {
                Exporter::Zipkin => export.zipkin = access,
                Exporter::Otlp => export.otlp = access,
            }
        }
    }
    problems.extend(header_problems);
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    Ok(TlsMaterial {
        inbound,
        inbound_upstream,
        outbound,
        export,
        warnings,
    })
}

fn problem(key: &str, message: impl ToString) -> ConfigError {
    ConfigError {
        path: format!("inbound.tls.{key}"),
        message: message.to_string(),
    }
}

fn inbound_tls(
    settings: &ServerTlsConfig,
    warnings: &mut Vec<String>,
) -> Result<InboundTls, Vec<ConfigError>> {
    let file_key = |error: &pem::PemError| {
        if error.path() == settings.cert.as_path() {
            "cert"
        } else {
            "key"
        }
    };
    let (cert, key) = match (pem::read(&settings.cert), pem::read(&settings.key)) {
        (Ok(cert), Ok(key)) => (cert, key),
        (cert, key) => {
            let cert = cert.err().map(|e| problem("cert", e));
            let key = key.err().map(|e| problem("key", e));
            return Err(cert.into_iter().chain(key).collect());
        }
    };
    let loaded = pem::certified_key(&cert, &key, &settings.cert, &settings.key)
        .map_err(|e| vec![problem(file_key(&e), e)])?;
    if let Some(warning) = pem::expiry_warning(&loaded, &settings.cert, SystemTime::now()) {
        warnings.push(format!("inbound.tls.cert: {warning}"));
    }
    let ca = |path: &Path| pem::ca_store(path).map_err(|e| vec![problem("client_ca", e)]);
    let clients = match &settings.client_auth {
        ClientAuth::Off => ClientVerification::Off,
        ClientAuth::Optional { ca: path } => ClientVerification::Optional(ca(path)?),
        ClientAuth::Required { ca: path } => ClientVerification::Required(ca(path)?),
    };
    let store = Arc::new(CertStore::new(loaded));
    let config =
        server::server_config(store.clone(), clients).map_err(|e| vec![problem("client_ca", e)])?;
    Ok(InboundTls {
        config,
        store,
        settings: settings.clone(),
        seen: (cert, key),
    })
}

#[cfg(test)]
mod tests;
