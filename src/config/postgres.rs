//! Outbound routes with `protocol: postgres`: validation of their
//! `tcp://host:port` upstream and the fields an HTTP route has that a
//! PostgreSQL relay does not use.

use std::sync::Arc;

use super::problems::Problems;
use super::types::{PostgresRoute, ProxyLimits, ProxyTimeouts};

/// The `protocol` value that makes a route a PostgreSQL relay.
pub(super) const PROTOCOL: &str = "postgres";

/// Parses `tcp://host:port` (a port is required: there is no scheme default).
pub(super) fn tcp_upstream(text: &str) -> Result<http::uri::Authority, String> {
    let rest = text.trim().strip_prefix("tcp://").ok_or_else(|| {
        format!(
            "`{text}`: a postgres route's upstream is tcp://host:port, e.g. tcp://127.0.0.1:5432"
        )
    })?;
    let authority: http::uri::Authority = rest
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("`{text}` has an invalid host:port"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{text}`: credentials in URLs are not supported"));
    }
    if authority.port_u16().is_none() {
        return Err(format!(
            "`{text}` needs a port, e.g. tcp://{}:5432",
            authority.host()
        ));
    }
    Ok(authority)
}

/// What a postgres route is made of, its timeouts and limits already merged.
pub(super) struct Parts<'a> {
    /// Its index in `outbound.routes`.
    pub index: usize,
    pub name: Arc<str>,
    pub listen: std::net::SocketAddr,
    pub upstream: Option<&'a str>,
    pub upstream_tls: bool,
    pub timeouts: ProxyTimeouts,
    pub limits: ProxyLimits,
}

/// A validated postgres route from its parts at `outbound.routes[i]`.
pub(super) fn route(parts: Parts<'_>, p: &mut Problems) -> Option<PostgresRoute> {
    let at = |key: &str| format!("outbound.routes[{}].{key}", parts.index);
    if parts.upstream_tls {
        p.push(
            at("upstream_tls"),
            "TLS to the database is not supported on a postgres route yet",
        );
    }
    let upstream = match parts.upstream.map(tcp_upstream) {
        None => {
            p.push(at("upstream"), "is required");
            return None;
        }
        Some(Err(message)) => {
            p.push(at("upstream"), message);
            return None;
        }
        Some(Ok(upstream)) => upstream,
    };
    Some(PostgresRoute {
        index: parts.index,
        name: parts.name,
        listen: parts.listen,
        upstream,
        connect_timeout: parts.timeouts.upstream_connect,
        startup_timeout: parts.timeouts.header_read,
        max_connections: parts.limits.max_connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(routes: &str) -> Result<super::super::Config, super::super::ConfigErrors> {
        let yaml = format!(
            "inbound: {{listen: 127.0.0.1:15006, upstream: http://127.0.0.1:8080}}\n\
             outbound:\n  routes:\n{routes}"
        );
        super::super::load(&yaml, Default::default())
    }

    #[test]
    fn a_postgres_route_is_validated_with_every_problem_named_by_its_key() {
        let config = load(
            "    - {name: users-db, protocol: postgres, listen: 127.0.0.1:15432, \
             upstream: tcp://db:5432, timeouts: {upstream_connect: 2s}, limits: {max_connections: 50}}\n",
        )
        .expect("valid");
        let route = &config.outbound.postgres[0];
        assert_eq!(
            (&*route.name, route.upstream.as_str()),
            ("users-db", "db:5432")
        );
        assert_eq!(route.connect_timeout, std::time::Duration::from_secs(2));
        assert_eq!(route.max_connections, 50);
        assert!(config.outbound.routes.is_empty(), "not an HTTP route");

        let errors = load(
            "    - {name: a, protocol: postgres, listen: 127.0.0.1:15432, upstream: http://db:5432}\n\
             \x20   - {name: a, protocol: postgres, listen: 127.0.0.1:15433, upstream: tcp://db:5432, \
             upstream_tls: {trust: webpki}}\n\
             \x20   - {name: c, protocol: postgres, listen: 127.0.0.1:15434, upstream: tcp://127.0.0.1:15433}\n\
             \x20   - {name: d, protocol: postgres, listen: 127.0.0.1:15434, upstream: tcp://db:5432}\n",
        )
        .expect_err("invalid");
        for path in [
            "outbound.routes[0].upstream",
            "outbound.routes[1].name",
            "outbound.routes[1].upstream_tls",
            "outbound.routes[2].upstream",
            "outbound.routes[3].listen",
        ] {
            assert!(errors.has(path), "{path} in {errors}");
        }
    }

    #[test]
    fn tcp_upstreams_need_the_scheme_and_a_port() {
        assert_eq!(
            tcp_upstream("tcp://127.0.0.1:5432").unwrap(),
            "127.0.0.1:5432"
        );
        assert_eq!(
            tcp_upstream("tcp://db.local:6432/").unwrap(),
            "db.local:6432"
        );
        for bad in [
            "127.0.0.1:5432",
            "postgres://db:5432",
            "tcp://db",
            "tcp://u:p@db:5432",
        ] {
            assert!(tcp_upstream(bad).is_err(), "{bad}");
        }
    }
}
