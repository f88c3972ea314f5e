//! Who a verified client certificate names: the subject's common name and
//! the subjectAltName URIs (SPIFFE IDs, `spiffe://trust-domain/path`) and
//! DNS names, recorded as `tls.client.subject` and `tls.client.san`.
//!
//! Only called on certificates rustls already verified against the client
//! CA; parsing failures yield an empty identity, never an error.

use rustls::pki_types::CertificateDer;

use super::x509;
use crate::span::Tag;

/// The identity a client certificate asserts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's CN, if any.
    pub common_name: Option<String>,
    /// SAN URIs, then SAN DNS names, in certificate order.
    pub san: Vec<String>,
}

impl PeerIdentity {
    /// Reads the identity of a DER certificate.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        let Ok(parsed) = webpki::EndEntityCert::try_from(cert) else {
            return Self::default();
        };
        let san = parsed
            .valid_uri_names()
            .chain(parsed.valid_dns_names())
            .map(str::to_owned)
            .collect();
        Self {
            common_name: x509::common_name(parsed.subject()),
            san,
        }
    }

    /// `tls.client.subject` (`CN=...`, the OpenTelemetry DN form) and
    /// `tls.client.san` (comma-separated), when present.
    pub fn tags(&self) -> impl Iterator<Item = Tag> + '_ {
        let subject = self.common_name.as_ref().map(|cn| Tag {
            key: "tls.client.subject".into(),
            value: format!("CN={cn}").into(),
        });
        let san = (!self.san.is_empty()).then(|| Tag {
            key: "tls.client.san".into(),
            value: self.san.join(",").into(),
        });
        subject.into_iter().chain(san)
    }
}
