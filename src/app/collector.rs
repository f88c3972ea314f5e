//! `tracehop collector`: the embedded collector, optionally relaying what
//! it receives to a real Zipkin-compatible endpoint.
//!
//! [`run_collector`] is the command: it binds, logs where to send spans,
//! and serves until SIGTERM or SIGINT. Owns the relay task: started before serving, stopped after the
//! listener has drained, so batches accepted last are still forwarded
//! (within the export shutdown timeout).

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::signals::Signals;
use super::{AppError, bind, local_addr};
use crate::collector::{self, Collector, CollectorConfig};
use crate::config::{self, ExportSettings};
use crate::export::{self, ClientError, CollectorAccess};

/// `tracehop collector`: serves on `listen` until SIGTERM or SIGINT; with
/// `forward` (a Zipkin URL), every accepted batch is relayed there too.
pub async fn run_collector(
    listen: SocketAddr,
    config: CollectorConfig,
    forward: Option<&str>,
) -> Result<(), AppError> {
    let target = forward
        .map(config::export_defaults_for)
        .transpose()
        .map_err(AppError::Forward)?;
    let listener = bind("collector", listen).await?;
    let addr = local_addr(&listener, listen);
    tracing::info!(
        "collector listening: POST http://{addr}/api/v2/spans, viewer at http://{addr}/"
    );
    if let Some(url) = forward {
        tracing::info!(forward = %url, "relaying received spans");
    }
    let stopped = Signals::listen(false)?.stopped();
    serve_collector(listener, config, target, stopped).await?;
    Ok(())
}

/// Serves the collector on `listener` until `shutdown`; with `forward`,
/// every accepted batch (with tail sampling, every kept trace) is also
/// relayed there. Stops in order: the listener drains, the tail sampler
/// decides what still waits, the relay sends what it has.
pub async fn serve_collector(
    listener: TcpListener,
    config: CollectorConfig,
    forward: Option<ExportSettings>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClientError> {
    let mut collector = Collector::new(config);
    let (stop_relay, relay_stopped) = watch::channel(false);
    let mut relay_task = None;
    if let Some(settings) = forward
        && let Some(target) = &settings.zipkin
    {
        let (sink, relay) = export::relay(
            &settings,
            target,
            collector.metrics().export.exporter("zipkin"),
            CollectorAccess::default(),
        )?;
        collector = collector.forwarding_to(sink);
        relay_task = Some(tokio::spawn(relay.run(stopped(relay_stopped))));
    }
    let (stop_decisions, decisions_stopped) = watch::channel(false);
    let decisions = tokio::spawn(collector::run_decisions(
        collector.clone(),
        stopped(decisions_stopped),
    ));
    collector::serve(collector, listener, shutdown).await;
    stop_decisions.send_replace(true);
    if let Err(error) = decisions.await {
        tracing::warn!(%error, "tail-sampling decision task failed");
    }
    stop_relay.send_replace(true);
    if let Some(task) = relay_task
        && let Err(error) = task.await
    {
        tracing::warn!(%error, "forwarding task failed");
    }
    Ok(())
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
