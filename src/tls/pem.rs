//! PEM files into rustls types, with errors that name the file.
//!
//! Certificates, private keys (PKCS#8, PKCS#1 and SEC1 — `PrivateKeyDer`
//! accepts all three), CA bundles, and the cert/key pair check. Parsing
//! works on bytes the caller read, so the reload poller can compare file
//! contents before parsing them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{provider, x509};

/// Why a PEM file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} is not valid PEM: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{} holds no private key (PEM PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("{} holds an unusable private key: {source}", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("certificate {} does not belong to key {}", cert.display(), key.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{} holds a CA certificate rustls cannot use: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

impl PemError {
    /// The file the problem is in (the key file for a mismatch).
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::NoCertificate { path }
            | Self::Malformed { path, .. }
            | Self::NoKey { path }
            | Self::BadKey { path, .. }
            | Self::BadCa { path, .. } => path,
            Self::Mismatch { key, .. } => key,
        }
    }
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM text, in order.
pub fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PemError::Malformed {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM text.
pub fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::NoKey {
            path: path.to_owned(),
        },
        other => PemError::Malformed {
            path: path.to_owned(),
            message: other.to_string(),
        },
    })
}

/// A certificate chain and its key, checked to belong together.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, PemError> {
    let chain = certificates(cert_pem, cert_path)?;
    let key = private_key(key_pem, key_path)?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|source| match source {
        rustls::Error::InconsistentKeys(_) => PemError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        },
        source => PemError::BadKey {
            path: key_path.to_owned(),
            source,
        },
    })
}

/// Reads and checks a pair of files.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, PemError> {
    certified_key(&read(cert)?, &read(key)?, cert, key)
}

/// A root store with every certificate of a CA bundle file.
pub fn ca_store(path: &Path) -> Result<Arc<RootCertStore>, PemError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(&read(path)?, path)? {
        roots.add(cert).map_err(|source| PemError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(Arc::new(roots))
}

/// A warning when the leaf certificate's `notAfter` has passed.
pub fn expiry_warning(key: &CertifiedKey, path: &Path, now: SystemTime) -> Option<String> {
    let leaf = key.cert.first()?;
    let not_after = x509::not_after(leaf)?;
    (not_after < now).then(|| {
        let ago = now.duration_since(not_after).unwrap_or_default().as_secs() / 3600;
        format!(
            "certificate {} expired {ago} hours ago; peers will refuse it",
            path.display()
        )
    })
}
