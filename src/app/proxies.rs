//! The proxying listeners: one [`Proxy`] per inbound, outbound-route and
//! forward-proxy listener, and the server task that runs each.
//!
//! Uses the validated config, the TLS material, the span sink and the live
//! sampler that [`super::start`] built; spawns nothing but the servers,
//! whose handles go back to the shutdown supervisor.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{
    CaptureConfig, Config, ForwardProxy, InboundConfig, ProxyLimits, ProxyTimeouts,
};
use crate::export::SpanSink;
use crate::inference::Register;
use crate::metrics::Metrics;
use crate::proxy::{self, Listener, Mode, Proxy, Telemetry, Upstream};
use crate::sampling::LiveSampler;
use crate::server::{self, ServerOptions};
use crate::span::Kind;
use crate::tls::{self, TlsMaterial};

/// A proxy and the server options of the listener it serves.
pub(super) struct Served {
    proxy: Arc<Proxy>,
    options: ServerOptions,
}

/// Server options from one listener's own timeouts and limits.
fn server_options(
    timeouts: &ProxyTimeouts,
    limits: &ProxyLimits,
    grace_period: Duration,
) -> ServerOptions {
    ServerOptions {
        header_read_timeout: Some(timeouts.header_read),
        max_header_bytes: Some(limits.max_header_bytes),
        max_connections: Some(limits.max_connections),
        max_concurrent_streams: Some(limits.max_concurrent_streams),
        idle_timeout: Some(timeouts.idle),
        request_body_timeout: timeouts.request_body,
        grace_period,
        tls: None,
        force_hyper: false,
        park_after: Some(crate::server::PARK_AFTER),
        gauges: None,
    }
}

/// What every proxy of the sidecar shares: where spans go, who samples,
/// the access log and the register of inbound requests in flight.
pub(super) fn telemetry(
    config: &Config,
    sink: &SpanSink,
    sampler: &LiveSampler,
    access_log: Option<&Arc<crate::access_log::AccessLog>>,
    register: Option<&Arc<Register>>,
) -> Telemetry {
    Telemetry {
        local_service: config.service.name.clone(),
        propagation: config.propagation.clone(),
        sampler: sampler.clone(),
        sink: sink.clone(),
        access_log: access_log.cloned(),
        summary_viewer: config.log.summary_viewer.clone(),
        register: register.cloned(),
    }
}

/// The proxies: the inbound one first, then one per outbound route, then
/// the forward proxy if configured (the order of [`super::Listeners`]).
/// Each listener kind uses its own timeouts and limits, for its server and
/// for its upstream connections.
pub(super) fn build_proxies(
    config: &Config,
    material: &TlsMaterial,
    metrics: &Metrics,
    telemetry: Telemetry,
    instance: &str,
) -> Vec<Served> {
    let served = |listener: Listener, timeouts, limits| Served {
        options: ServerOptions {
            force_hyper: config.paths.hyper,
            gauges: Some(listener.metrics.connections.clone()),
            ..server_options(timeouts, limits, config.shutdown.grace_period)
        },
        proxy: Arc::new(Proxy::new(telemetry.clone(), listener)),
    };
    let outbound = |remote_service, upstream, mode, label: &str| Listener {
        via: proxy::Via::new(instance, label),
        kind: Kind::Client,
        remote_service,
        upstream,
        metrics: metrics.outbound.clone(),
        routes: config.outbound.route_templates.clone(),
        capture: CaptureConfig::default(),
        mode,
    };
    let inbound = &config.inbound;
    let mut all = vec![served(
        inbound_listener(config, inbound, material, metrics, instance),
        &inbound.timeouts,
        &inbound.limits,
    )];
    for (i, (route, tls)) in config
        .outbound
        .routes
        .iter()
        .zip(&material.outbound)
        .enumerate()
    {
        let upstream = Upstream::new(
            &route.upstream,
            route.protocol,
            &route.timeouts,
            tls.as_ref(),
        )
        .force(config.paths);
        let label = format!("route{i}");
        let listener = outbound(Some(route.name.clone()), upstream, Mode::Reverse, &label);
        all.push(served(listener, &route.timeouts, &route.limits));
    }
    if let ForwardProxy::Enabled(f) = &config.outbound.forward_proxy {
        let mode = Mode::Forward {
            allow: f.allow.clone(),
            connect: f.connect,
            connect_timeout: f.timeouts.upstream_connect,
        };
        let listener = outbound(
            None,
            Upstream::forward(&f.timeouts).force(config.paths),
            mode,
            "forward",
        );
        all.push(served(listener, &f.timeouts, &f.limits));
    }
    all
}

fn inbound_listener(
    config: &Config,
    inbound: &InboundConfig,
    material: &TlsMaterial,
    metrics: &Metrics,
    instance: &str,
) -> Listener {
    Listener {
        via: proxy::Via::new(instance, "inbound"),
        kind: Kind::Server,
        remote_service: None,
        upstream: Upstream::new(
            &inbound.upstream,
            inbound.protocol,
            &inbound.timeouts,
            material.inbound_upstream.as_ref(),
        )
        .force(config.paths),
        metrics: metrics.inbound.clone(),
        routes: inbound.routes.clone(),
        capture: inbound.capture.clone(),
        mode: Mode::Reverse,
    }
}

/// Spawns one server per proxy; only the inbound listener (the first)
/// terminates TLS.
pub(super) fn spawn_proxies(
    listeners: impl Iterator<Item = TcpListener>,
    proxies: Vec<Served>,
    inbound_tls: Option<Arc<tls::TlsServer>>,
    stopped: &dyn Fn() -> Box<dyn Future<Output = ()> + Send + Unpin>,
) -> Vec<JoinHandle<()>> {
    let tls = std::iter::once(inbound_tls).chain(std::iter::repeat(None));
    listeners
        .zip(proxies)
        .zip(tls)
        .map(|((listener, Served { proxy, options }), tls)| {
            let handler = move |request, conn| proxy::handle(proxy.clone(), request, conn);
            let options = ServerOptions { tls, ..options };
            tokio::spawn(server::serve(listener, options, handler, stopped()))
        })
        .collect()
}
