//! `tracehop collector`: the embedded collector, optionally relaying what
//! it receives to a real Zipkin-compatible endpoint.
//!
//! Owns the relay task: started before serving, stopped after the
//! listener has drained, so batches accepted last are still forwarded
//! (within the export shutdown timeout).

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::collector::{self, Collector, CollectorConfig};
use crate::config::ZipkinExport;
use crate::export::{self, ClientError, CollectorAccess};
use crate::metrics::Metrics;

/// Serves the collector on `listener` until `shutdown`; with `forward`,
/// every accepted batch is also relayed there.
pub async fn serve_collector(
    listener: TcpListener,
    config: CollectorConfig,
    forward: Option<ZipkinExport>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClientError> {
    let mut collector = Collector::new(config);
    let (stop_relay, relay_stopped) = watch::channel(false);
    let mut relay_task = None;
    if let Some(target) = forward {
        let metrics = Metrics::new();
        let (sink, relay) =
            export::relay(&target, metrics.export.clone(), CollectorAccess::default())?;
        collector = collector.forwarding_to(sink);
        let mut stopped = relay_stopped;
        relay_task = Some(tokio::spawn(relay.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    collector::serve(collector, listener, shutdown).await;
    stop_relay.send_replace(true);
    if let Some(task) = relay_task
        && let Err(error) = task.await
    {
        tracing::warn!(%error, "forwarding task failed");
    }
    Ok(())
}
