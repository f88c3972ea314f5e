//! `export.resolve: dns`: an exporter's endpoint set follows what DNS says
//! its collector's host is, looked up again every `resolve_interval`.
//!
//! Each address is an endpoint of its own (`ip:port`, the name hashed by
//! [`super::rendezvous`]), with its own queue and batcher; the connection
//! goes to the address but still names the host (`Host`, TLS). This is
//! what a Kubernetes headless Service gives: one A/AAAA record per ready
//! collector pod. An address that appears joins the set; one that is gone
//! leaves it, its batcher flushes what it holds and stops, and its series
//! leave the metrics. A failed or empty lookup keeps the last set, since
//! a DNS hiccup is no reason to move every trace.
//!
//! [`Discovery::run`] is the task `app` spawns; it owns the batchers of
//! the endpoints it adds and waits for them at shutdown. The lookup is a
//! seam ([`Lookup`]): the system resolver in production, a table in tests.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::client::CollectorClient;
use super::endpoints::{Endpoint, EndpointSet};
use super::{Pipelines, StopSignal};
use crate::config::UpstreamUrl;
use crate::metrics::EndpointSetMetrics;

/// Looks up `host:port`; every address found, in any order.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver (`getaddrinfo`, through tokio's blocking pool).
pub fn system_lookup() -> Lookup {
    Arc::new(|authority| {
        Box::pin(async move { Ok(tokio::net::lookup_host(authority).await?.collect()) })
    })
}

/// Keeps one exporter's endpoint set in line with DNS.
pub struct Discovery {
    pub(super) url: UpstreamUrl,
    pub(super) interval: Duration,
    pub(super) lookup: Lookup,
    pub(super) set: EndpointSet,
    pub(super) pipelines: Pipelines,
    pub(super) metrics: EndpointSetMetrics,
}

impl Discovery {
    /// Looks up at once and then every interval until `stopped()`
    /// completes; then waits for the batchers it started, which flush on
    /// the same signal.
    pub async fn run(self, stopped: StopSignal) {
        let mut batchers = JoinSet::new();
        let mut stop = stopped();
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = self.refresh(&mut batchers, &stopped) => {}
            }
            let next = tokio::time::sleep(self.interval);
            tokio::pin!(next);
            let stopping = loop {
                tokio::select! {
                    biased;
                    () = &mut stop => break true,
                    Some(done) = batchers.join_next(), if !batchers.is_empty() => self.forget(done),
                    () = &mut next => break false,
                }
            };
            if stopping {
                break;
            }
        }
        while let Some(done) = batchers.join_next().await {
            self.forget(done);
        }
    }

    /// One lookup, and the set changed to match it.
    async fn refresh(&self, batchers: &mut JoinSet<Arc<str>>, stopped: &StopSignal) {
        let authority = self.url.authority.as_str().to_owned();
        // A lookup that hangs must not hold up the next one.
        let found = match tokio::time::timeout(self.interval, (self.lookup)(authority)).await {
            Ok(Ok(found)) if !found.is_empty() => found,
            Ok(Ok(_)) => return self.keep("no address found"),
            Ok(Err(error)) => return self.keep(&error.to_string()),
            Err(_) => return self.keep("the lookup timed out"),
        };
        let found: BTreeSet<SocketAddr> = found.into_iter().collect();
        let names: BTreeSet<String> = found.iter().map(SocketAddr::to_string).collect();
        let current = self.set.names();
        let removed: Vec<&Arc<str>> = current.iter().filter(|n| !names.contains(&***n)).collect();
        let mut added = Vec::new();
        for addr in &found {
            let name = addr.to_string();
            if current.iter().any(|n| **n == *name) {
                continue;
            }
            match self.endpoint(*addr, &name) {
                Some((endpoint, batcher)) => {
                    let stop = stopped();
                    batchers.spawn(async move {
                        batcher.run(stop).await;
                        Arc::<str>::from(name)
                    });
                    added.push(endpoint);
                }
                None => continue,
            }
        }
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let (added_names, removed_names) = (
            added
                .iter()
                .map(|e: &Endpoint| e.name.to_string())
                .collect::<Vec<_>>(),
            removed.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        );
        self.set.replace(|name| names.contains(name), added);
        let now = self.set.names();
        self.metrics
            .changed(added_names.len(), removed_names.len(), now.len());
        tracing::info!(
            exporter = self.pipelines.exporter.label(),
            host = %self.url.authority,
            added = ?added_names,
            removed = ?removed_names,
            endpoints = ?now,
            "collector endpoints changed"
        );
    }

    /// The endpoint for `addr` and its batcher, or `None` (logged) when
    /// its client cannot be built.
    fn endpoint(&self, addr: SocketAddr, name: &str) -> Option<(Endpoint, super::Batcher)> {
        let p = &self.pipelines;
        match CollectorClient::at_address(
            p.exporter,
            &self.url,
            addr,
            p.settings.timeout,
            p.access.clone(),
        ) {
            Ok(client) => Some(p.build(name, client)),
            Err(error) => {
                tracing::error!(%error, endpoint = name, "cannot export to this collector address");
                None
            }
        }
    }

    fn keep(&self, reason: &str) {
        tracing::warn!(
            exporter = self.pipelines.exporter.label(),
            host = %self.url.authority,
            reason,
            endpoints = ?self.set.names(),
            "collector lookup failed; keeping the endpoints found before"
        );
    }

    /// The batcher of a removed endpoint finished: its series go.
    fn forget(&self, done: Result<Arc<str>, tokio::task::JoinError>) {
        match done {
            Ok(name) => self
                .pipelines
                .families
                .forget(self.pipelines.exporter.label(), &name),
            Err(error) => tracing::warn!(%error, "an export task failed"),
        }
    }
}

#[cfg(test)]
mod tests;
