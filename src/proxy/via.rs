//! Forwarding loops, caught the way proxies catch them: with `Via`
//! (RFC 9110 §7.6.3).
//!
//! Each listener adds its own entry to `Via` on every request it forwards,
//! `1.1 tracehop-<instance>-<listener>` (received protocol, then a
//! pseudonym). A request that already carries this listener's pseudonym
//! has been here before: it came back through a DNS name, a wildcard
//! address or another proxy pointing back. It is answered `508 Loop
//! Detected` before anything is forwarded, instead of recursing until
//! sockets or memory run out. The configuration check catches the loops
//! it can see (an upstream that is one of the sidecar's own listeners).
//!
//! The pseudonym is per listener, not per sidecar: an app that copies its
//! inbound request's headers onto a call it makes through its outbound
//! route, or a service that calls itself through its own sidecar, passes
//! two different listeners of one sidecar, which is not a loop.

use http::{HeaderMap, HeaderValue, Version, header};
use rand::Rng;

use crate::http1::semantics;

/// One listener's `Via` entry and the pseudonym it looks for.
#[derive(Clone, Debug)]
pub struct Via {
    pseudonym: Box<str>,
    http10: HeaderValue,
    http11: HeaderValue,
    http2: HeaderValue,
}

impl Via {
    /// The entry of `listener` (a token: `inbound`, `route0`, `forward`)
    /// of the sidecar `instance` ([`instance_id`]).
    pub fn new(instance: &str, listener: &str) -> Self {
        let pseudonym: Box<str> = format!("tracehop-{instance}-{listener}").into();
        let value = |protocol: &str| {
            HeaderValue::from_str(&format!("{protocol} {pseudonym}"))
                .expect("an instance id and listener label are tokens")
        };
        Self {
            http10: value("1.0"),
            http11: value("1.1"),
            http2: value("2"),
            pseudonym,
        }
    }

    /// The pseudonym this listener writes into `Via`.
    pub fn pseudonym(&self) -> &str {
        &self.pseudonym
    }

    /// The entry for a request received as `version`.
    pub fn entry(&self, version: Version) -> HeaderValue {
        match version {
            Version::HTTP_09 | Version::HTTP_10 => self.http10.clone(),
            Version::HTTP_2 | Version::HTTP_3 => self.http2.clone(),
            _ => self.http11.clone(),
        }
    }

    /// Whether `headers` already name this listener in `Via`: the request
    /// has been forwarded here before.
    pub fn looped(&self, headers: &HeaderMap) -> bool {
        headers.get_all(header::VIA).iter().any(|value| {
            semantics::list_elements(value.as_bytes()).any(|entry| {
                // `received-protocol RWS received-by [ RWS comment ]`
                let mut words = entry
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|word| !word.is_empty());
                words.nth(1).is_some_and(|received_by| {
                    received_by.eq_ignore_ascii_case(self.pseudonym.as_bytes())
                })
            })
        })
    }
}

/// A new sidecar instance's id: 16 random hex digits, so two sidecars
/// (and two runs of one) never share a pseudonym.
pub fn instance_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(vias: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for via in vias {
            headers.append(header::VIA, HeaderValue::from_str(via).unwrap());
        }
        headers
    }

    #[test]
    fn a_request_that_names_this_listener_has_looped() {
        let via = Via::new("00ff00ff00ff00ff", "inbound");
        let mine = via.entry(Version::HTTP_11);
        assert_eq!(mine, "1.1 tracehop-00ff00ff00ff00ff-inbound");
        assert_eq!(
            via.entry(Version::HTTP_2),
            "2 tracehop-00ff00ff00ff00ff-inbound"
        );
        assert_eq!(
            via.entry(Version::HTTP_10),
            "1.0 tracehop-00ff00ff00ff00ff-inbound"
        );
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["1.1 tracehop-00ff00ff00ff00ff-inbound"], true),
            // Anywhere in the list, any line, any case, with a comment.
            (&["1.0 fred, 1.1 p.example.net"], false),
            (
                &["1.0 fred, 1.1 TRACEHOP-00ff00ff00ff00ff-INBOUND (tracehop)"],
                true,
            ),
            (
                &["1.0 fred", "HTTP/1.1 tracehop-00ff00ff00ff00ff-inbound"],
                true,
            ),
            // Another listener of the same sidecar, another sidecar.
            (&["1.1 tracehop-00ff00ff00ff00ff-route0"], false),
            (&["1.1 tracehop-1111111111111111-inbound"], false),
            // The pseudonym as a protocol or inside a comment is not received-by.
            (&["tracehop-00ff00ff00ff00ff-inbound x"], false),
            (&[",,, ,1.1"], false),
        ];
        for (vias, expected) in cases {
            assert_eq!(via.looped(&headers(vias)), *expected, "{vias:?}");
        }
    }

    #[test]
    fn instance_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (instance_id(), instance_id());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
