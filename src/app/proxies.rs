//! The proxying listeners: one [`Proxy`] per inbound, outbound-route and
//! forward-proxy listener, and the server task that runs each.
//!
//! Uses the validated config, the TLS material, the span sink and the live
//! sampler that [`super::start`] built; spawns nothing but the servers,
//! whose handles go back to the shutdown supervisor.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{CaptureConfig, Config, ForwardProxy};
use crate::export::SpanSink;
use crate::metrics::Metrics;
use crate::proxy::{self, Listener, Mode, Proxy, Telemetry, Upstream};
use crate::sampling::LiveSampler;
use crate::server::{self, ServerOptions};
use crate::span::Kind;
use crate::tls::{self, ClientTls, TlsMaterial};

pub(super) fn server_options(config: &Config) -> ServerOptions {
    let inbound = &config.inbound;
    ServerOptions {
        header_read_timeout: Some(inbound.timeouts.header_read),
        max_header_bytes: Some(inbound.limits.max_header_bytes),
        max_connections: Some(inbound.limits.max_connections),
        max_concurrent_streams: Some(inbound.limits.max_concurrent_streams),
        idle_timeout: Some(inbound.timeouts.idle),
        grace_period: config.shutdown.grace_period,
        tls: None,
    }
}

/// The proxies: the inbound one first, then one per outbound route, then
/// the forward proxy if configured (the order of [`super::Listeners`]).
pub(super) fn build_proxies(
    config: &Config,
    material: &TlsMaterial,
    metrics: &Metrics,
    sink: &SpanSink,
    sampler: &LiveSampler,
) -> Vec<Arc<Proxy>> {
    let telemetry = Telemetry {
        local_service: config.service.name.clone(),
        propagation: config.propagation.clone(),
        sampler: sampler.clone(),
        sink: sink.clone(),
        access_log: config.log.access_log,
    };
    let inbound = &config.inbound;
    let outbound = |remote_service, upstream, mode| Listener {
        kind: Kind::Client,
        remote_service,
        upstream,
        metrics: metrics.outbound.clone(),
        routes: config.outbound.route_templates.clone(),
        capture: CaptureConfig::default(),
        mode,
    };
    let upstream = |url, protocol, tls: &Option<ClientTls>| {
        Upstream::new(url, protocol, &inbound.timeouts, tls.as_ref())
    };
    let mut listeners = vec![Listener {
        kind: Kind::Server,
        remote_service: None,
        upstream: upstream(
            &inbound.upstream,
            inbound.protocol,
            &material.inbound_upstream,
        ),
        metrics: metrics.inbound.clone(),
        routes: inbound.routes.clone(),
        capture: inbound.capture.clone(),
        mode: Mode::Reverse,
    }];
    for (route, tls) in config.outbound.routes.iter().zip(&material.outbound) {
        let upstream = upstream(&route.upstream, route.protocol, tls);
        listeners.push(outbound(Some(route.name.clone()), upstream, Mode::Reverse));
    }
    if let ForwardProxy::Enabled(f) = &config.outbound.forward_proxy {
        let mode = Mode::Forward {
            allow: f.allow.clone(),
            connect: f.connect,
            connect_timeout: inbound.timeouts.upstream_connect,
        };
        listeners.push(outbound(None, Upstream::forward(&inbound.timeouts), mode));
    }
    listeners
        .into_iter()
        .map(|listener| Arc::new(Proxy::new(telemetry.clone(), listener)))
        .collect()
}

/// Spawns one server per proxy; only the inbound listener (the first)
/// terminates TLS.
pub(super) fn spawn_proxies(
    listeners: impl Iterator<Item = TcpListener>,
    proxies: Vec<Arc<Proxy>>,
    options: &ServerOptions,
    inbound_tls: Option<Arc<tls::TlsServer>>,
    stopped: &dyn Fn() -> Box<dyn Future<Output = ()> + Send + Unpin>,
) -> Vec<JoinHandle<()>> {
    let tls = std::iter::once(inbound_tls).chain(std::iter::repeat(None));
    listeners
        .zip(proxies)
        .zip(tls)
        .map(|((listener, proxy), tls)| {
            let handler = move |request, conn| proxy::handle(proxy.clone(), request, conn);
            let options = ServerOptions {
                tls,
                ..options.clone()
            };
            tokio::spawn(server::serve(listener, options, handler, stopped()))
        })
        .collect()
}
