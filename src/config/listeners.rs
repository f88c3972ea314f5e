//! The sidecar's own addresses: no two listeners on one address, and no
//! upstream that is one of them (a request sent there would come back to
//! the sidecar, again and again, until sockets or memory run out).
//!
//! Only what the configuration alone can tell is checked here: IP literals
//! and `localhost`. A loop through a DNS name, a wildcard address or
//! another sidecar pointing back is caught at run time by the `Via` token
//! (see `proxy::via`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::problems::Problems;
use super::types::{Config, ForwardProxy};

/// Every listener of `config` with its YAML key, in the order the keys
/// appear in the file.
fn listeners(config: &Config) -> Vec<(String, SocketAddr)> {
    let mut all = vec![("inbound.listen".to_owned(), config.inbound.listen)];
    for (i, route) in config.outbound.routes.iter().enumerate() {
        all.push((format!("outbound.routes[{i}].listen"), route.listen));
    }
    for route in &config.outbound.postgres {
        all.push((
            format!("outbound.routes[{}].listen", route.index),
            route.listen,
        ));
    }
    if let ForwardProxy::Enabled(forward) = &config.outbound.forward_proxy {
        all.push(("outbound.forward_proxy.listen".to_owned(), forward.listen));
    }
    all.push(("admin.listen".to_owned(), config.admin.listen));
    all
}

/// Records a problem for each listener that shares an earlier one's
/// address, and for each upstream that is one of the listeners.
pub(super) fn check(config: &Config, p: &mut Problems) {
    let listeners = listeners(config);
    for (i, (key, address)) in listeners.iter().enumerate() {
        if let Some((earlier, _)) = listeners[..i]
            .iter()
            .find(|(_, other)| overlap(*address, *other))
        {
            p.push(
                key,
                format!("{address} is also `{earlier}`: two listeners cannot share an address"),
            );
        }
    }
    let mut upstreams = vec![(
        "inbound.upstream".to_owned(),
        &config.inbound.upstream.authority,
    )];
    for (i, route) in config.outbound.routes.iter().enumerate() {
        upstreams.push((
            format!("outbound.routes[{i}].upstream"),
            &route.upstream.authority,
        ));
    }
    for route in &config.outbound.postgres {
        upstreams.push((
            format!("outbound.routes[{}].upstream", route.index),
            &route.upstream,
        ));
    }
    for (key, upstream) in upstreams {
        if let Some((listener, address)) = listeners
            .iter()
            .find(|(_, address)| reaches(upstream, *address))
        {
            p.push(
                key,
                format!(
                    "`{upstream}` is this sidecar's own `{listener}` ({address}): every request would come back to it"
                ),
            );
        }
    }
}

/// Whether binding both addresses would clash: the same port (not 0, which
/// picks a free one) and the same IP, or a wildcard IP of the same family,
/// or the IPv6 wildcard (dual-stack by default on Linux: it takes IPv4 too).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let wildcard =
        |x: SocketAddr, y: SocketAddr| x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || wildcard(a, b) || wildcard(b, a))
}

/// Whether a connection to `upstream` would land on `listener`: the same
/// port, and a host that is the listener's IP, or a local address
/// (loopback, `localhost`, the wildcard) when the listener takes every
/// local address.
fn reaches(upstream: &http::uri::Authority, listener: SocketAddr) -> bool {
    let Some(port) = upstream.port_u16() else {
        return false;
    };
    if port != listener.port() || port == 0 {
        return false;
    }
    let host = upstream.host();
    let ips: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else {
        match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => vec![ip],
            Err(_) => return false,
        }
    };
    ips.iter().any(|ip| {
        *ip == listener.ip()
            || (listener.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
            || (ip.is_unspecified() && listener.ip().is_loopback())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(authority: &'static str) -> http::uri::Authority {
        http::uri::Authority::from_static(authority)
    }

    #[test]
    fn an_upstream_reaches_a_listener_by_ip_localhost_or_wildcard() {
        let cases: &[(&'static str, &str, bool)] = &[
            ("127.0.0.1:8700", "127.0.0.1:8700", true),
            ("localhost:8700", "127.0.0.1:8700", true),
            ("localhost:8700", "[::1]:8700", true),
            ("127.0.0.1:8700", "0.0.0.0:8700", true),
            ("0.0.0.0:8700", "127.0.0.1:8700", true),
            ("[::1]:8700", "[::]:8700", true),
            ("127.0.0.1:8701", "127.0.0.1:8700", false),
            ("127.0.0.2:8700", "127.0.0.1:8700", false),
            ("10.0.0.5:8700", "127.0.0.1:8700", false),
            // A name other than localhost is the Via check's to catch.
            ("app.internal:8700", "0.0.0.0:8700", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ];
        for &(upstream, listener, expected) in cases {
            let listener: SocketAddr = listener.parse().unwrap();
            assert_eq!(
                reaches(&url(upstream), listener),
                expected,
                "{upstream} -> {listener}"
            );
        }
    }

    #[test]
    fn listeners_clash_on_the_same_port_and_ip_or_a_wildcard() {
        let cases = [
            ("127.0.0.1:15000", "127.0.0.1:15000", true),
            ("0.0.0.0:15000", "127.0.0.1:15000", true),
            ("[::]:15000", "[::1]:15000", true),
            ("127.0.0.1:15000", "127.0.0.2:15000", false),
            ("127.0.0.1:15000", "127.0.0.1:15001", false),
            ("0.0.0.0:15000", "[::1]:15000", false),
            ("[::]:15000", "127.0.0.1:15000", true),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ];
        for (a, b, expected) in cases {
            let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(overlap(a, b), expected, "{a} {b}");
            assert_eq!(overlap(b, a), expected, "{b} {a}");
        }
    }
}
