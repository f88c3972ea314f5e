//! TLS and credential keys: their raw YAML shape, validated types and checks.
//!
//! Covers `inbound.tls` (termination, optional mTLS), the `upstream_tls`
//! of the inbound listener and of each outbound route, `export.tls` and
//! `export.headers`. Only the *shape* is checked here (which keys go
//! together, names that parse); files and environment variables are read
//! later by `tls::load_material`, so config tests stay free of files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use super::types::{Scheme, UpstreamUrl};

/// `inbound.tls` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServerTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub client_auth: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub reload_interval: Option<String>,
}

/// `upstream_tls` / `export.tls` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientTls {
    pub trust: Option<String>,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// One `export.headers` value: exactly one of the three keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderValue {
    pub value: Option<String>,
    pub value_from_env: Option<String>,
    pub value_from_file: Option<String>,
}

/// TLS termination on the inbound listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1; RSA or ECDSA).
    pub key: PathBuf,
    pub client_auth: ClientAuth,
    /// How often the cert and key files are checked for a new pair.
    pub reload_interval: Duration,
}

/// Whether downstreams must present a certificate (mTLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    Off,
    /// Asked for; a connection without one is still accepted, one with a
    /// certificate that does not chain to the CA is refused.
    Optional { ca: PathBuf },
    /// Connections without a certificate from the CA are refused.
    Required { ca: PathBuf },
}

/// How a TLS client (to an upstream or the collector) checks the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsConfig {
    pub trust: Trust,
    /// SNI and the name the certificate must carry; default: the URL's host.
    pub server_name: Option<String>,
    /// A certificate to present (mTLS to the upstream).
    pub client_cert: Option<CertKeyPaths>,
}

/// Where trusted root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The Mozilla roots compiled into tracehop (the default: works in
    /// minimal containers without a CA bundle).
    Webpki,
    /// The operating system's store.
    System,
    /// Only the CAs in this PEM file (a private CA).
    CaFile(PathBuf),
}

/// A certificate chain and its key, both PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKeyPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An extra header on every upload to the collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraHeader {
    pub name: http::HeaderName,
    pub source: SecretSource,
}

/// Where a header value comes from. Values are never logged or printed.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Literal(String),
    /// An environment variable, read at startup.
    Env(String),
    /// A file (trailing newline removed), read at startup.
    File(PathBuf),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Literal(<redacted>)"),
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Headers the export client sets itself; a configured value would clash.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "b3",
];

fn path(p: &mut Problems, at: &str, value: Option<String>) -> Option<PathBuf> {
    match value {
        Some(v) if v.trim().is_empty() => {
            p.push(at, "must not be empty");
            None
        }
        Some(v) => Some(PathBuf::from(v)),
        None => None,
    }
}

pub(super) fn server_tls(at: &str, raw: RawServerTls, p: &mut Problems) -> Option<ServerTlsConfig> {
    let cert = path(p, &format!("{at}.cert"), raw.cert);
    let key = path(p, &format!("{at}.key"), raw.key);
    let ca = path(p, &format!("{at}.client_ca"), raw.client_ca);
    let client_auth = match (raw.client_auth.as_deref(), ca) {
        (None | Some("off"), None) => ClientAuth::Off,
        (None | Some("required"), Some(ca)) => ClientAuth::Required { ca },
        (Some("optional"), Some(ca)) => ClientAuth::Optional { ca },
        (Some("off"), Some(_)) => {
            p.push(format!("{at}.client_auth"), "is `off` but client_ca is set");
            ClientAuth::Off
        }
        (Some("required" | "optional"), None) => {
            p.push(
                format!("{at}.client_ca"),
                "is required when client_auth is set",
            );
            ClientAuth::Off
        }
        (Some(other), _) => {
            p.push(
                format!("{at}.client_auth"),
                format!("`{other}` is not a mode: use required, optional or off"),
            );
            ClientAuth::Off
        }
    };
    let reload_interval = p.positive_duration(
        &format!("{at}.reload_interval"),
        raw.reload_interval.as_deref(),
        Duration::from_secs(5),
    );
    match (cert, key) {
        (Some(cert), Some(key)) => Some(ServerTlsConfig {
            cert,
            key,
            client_auth,
            reload_interval,
        }),
        (cert, key) => {
            for (name, missing) in [("cert", cert.is_none()), ("key", key.is_none())] {
                if missing {
                    p.push(format!("{at}.{name}"), "is required to serve TLS");
                }
            }
            None
        }
    }
}

/// Validates a client TLS section belonging to `url`; `None` when absent.
pub(super) fn client_tls(
    at: &str,
    raw: Option<RawClientTls>,
    url: Option<&UpstreamUrl>,
    p: &mut Problems,
) -> Option<ClientTlsConfig> {
    let raw = raw?;
    if url.is_some_and(|u| u.scheme == Scheme::Http) {
        p.push(at, "only applies to https:// URLs");
    }
    let ca_file = path(p, &format!("{at}.ca_file"), raw.ca_file);
    let trust = match (raw.trust.as_deref(), ca_file) {
        (None | Some("ca_file"), Some(ca)) => Trust::CaFile(ca),
        (None | Some("webpki"), None) => Trust::Webpki,
        (Some("system"), None) => Trust::System,
        (Some("ca_file"), None) => {
            p.push(format!("{at}.ca_file"), "is required for trust `ca_file`");
            Trust::Webpki
        }
        (Some("webpki" | "system"), Some(_)) => {
            p.push(format!("{at}.ca_file"), "only applies to trust `ca_file`");
            Trust::Webpki
        }
        (Some(other), _) => {
            p.push(
                format!("{at}.trust"),
                format!("`{other}` is not a trust source: use webpki, system or ca_file"),
            );
            Trust::Webpki
        }
    };
    let server_name = raw.server_name.filter(|name| {
        let ok = rustls::pki_types::ServerName::try_from(name.as_str()).is_ok();
        if !ok {
            p.push(
                format!("{at}.server_name"),
                format!("`{name}` is not a DNS name or IP address"),
            );
        }
        ok
    });
    let cert = path(p, &format!("{at}.client_cert"), raw.client_cert);
    let key = path(p, &format!("{at}.client_key"), raw.client_key);
    let client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(CertKeyPaths { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            p.push(format!("{at}.client_key"), "is required with client_cert");
            None
        }
        (None, Some(_)) => {
            p.push(format!("{at}.client_cert"), "is required with client_key");
            None
        }
    };
    Some(ClientTlsConfig {
        trust,
        server_name,
        client_cert,
    })
}

pub(super) fn headers(
    at: &str,
    raw: BTreeMap<String, RawHeaderValue>,
    p: &mut Problems,
) -> Vec<ExtraHeader> {
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let here = format!("{at}.{name}");
        let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
            p.push(here, format!("`{name}` is not a valid header name"));
            continue;
        };
        if RESERVED_HEADERS.contains(&header.as_str()) {
            p.push(here, format!("`{name}` is set by tracehop itself"));
            continue;
        }
        let source = match (value.value, value.value_from_env, value.value_from_file) {
            (Some(v), None, None) => {
                if http::HeaderValue::from_str(&v).is_err() {
                    p.push(format!("{here}.value"), "is not a valid header value");
                }
                SecretSource::Literal(v)
            }
            (None, Some(var), None) if !var.trim().is_empty() => SecretSource::Env(var),
            (None, None, Some(file)) if !file.trim().is_empty() => {
                SecretSource::File(PathBuf::from(file))
            }
            _ => {
                p.push(
                    here,
                    "needs exactly one of value, value_from_env, value_from_file",
                );
                continue;
            }
        };
        out.push(ExtraHeader {
            name: header,
            source,
        });
    }
    out
}
