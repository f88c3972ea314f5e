//! The forward proxy's allow-list: it never forwards anywhere else.
//!
//! A target is allowed when its host (case-insensitive) equals an entry's
//! host, or ends with `.suffix` for a `*.suffix` entry (the apex itself is
//! not matched), and its port equals the entry's port or the entry says `*`.

use http::{Method, Request, Uri};

use super::error::ProxyError;
use crate::config::AllowTarget;

/// The target of a forward-proxy request: `host:port` from the
/// absolute-form URI, or the authority of a `CONNECT`.
pub fn target_of<B>(request: &Request<B>) -> Result<(String, u16), ProxyError> {
    let uri: &Uri = request.uri();
    let authority = uri.authority().ok_or(ProxyError::BadTarget)?;
    let port = match (authority.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("http")) => 80,
        (None, Some("https")) => 443,
        _ if request.method() == Method::CONNECT => return Err(ProxyError::BadTarget),
        _ => 80,
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Ok((host.to_ascii_lowercase(), port))
}

/// Whether `host:port` matches an entry.
pub fn allows(list: &[AllowTarget], host: &str, port: u16) -> bool {
    list.iter().any(|entry| {
        let host_ok = match entry.host.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => entry.host == host,
        };
        host_ok && entry.port.is_none_or(|p| p == port)
    })
}

/// Checks a request against the allow-list; the target on success.
pub fn check<B>(list: &[AllowTarget], request: &Request<B>) -> Result<(String, u16), ProxyError> {
    let (host, port) = target_of(request)?;
    if allows(list, &host, port) {
        Ok((host, port))
    } else {
        Err(ProxyError::Denied {
            target: format!("{host}:{port}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, port: Option<u16>) -> AllowTarget {
        AllowTarget {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn matching() {
        let list = [
            entry("api.example.com", Some(443)),
            entry("*.internal", None),
            entry("::1", Some(8080)),
        ];
        let cases = [
            ("api.example.com", 443, true),
            ("api.example.com", 80, false),
            ("evil-api.example.com", 443, false),
            ("example.com", 443, false),
            ("users.internal", 1234, true),
            ("a.b.internal", 80, true),
            ("internal", 80, false),
            (".internal", 80, false),
            ("notinternal", 80, false),
            ("::1", 8080, true),
            ("::1", 8081, false),
        ];
        for (host, port, want) in cases {
            assert_eq!(allows(&list, host, port), want, "{host}:{port}");
        }
        assert!(!allows(&[], "anything", 80), "an empty list allows nothing");
    }

    #[test]
    fn targets_from_requests() {
        let get = |uri: &str| Request::get(uri).body(()).unwrap();
        assert_eq!(
            target_of(&get("http://API.Example.com/x")).unwrap(),
            ("api.example.com".into(), 80)
        );
        assert_eq!(
            target_of(&get("http://[::1]:8080/")).unwrap(),
            ("::1".into(), 8080)
        );
        assert!(target_of(&get("/origin-form")).is_err());
        let connect = Request::connect("db.internal:5432").body(()).unwrap();
        assert_eq!(target_of(&connect).unwrap(), ("db.internal".into(), 5432));
        let list = [entry("db.internal", Some(5432))];
        assert!(check(&list, &connect).is_ok());
        assert!(matches!(
            check(&list, &get("http://db.internal:80/")),
            Err(ProxyError::Denied { .. })
        ));
    }
}
