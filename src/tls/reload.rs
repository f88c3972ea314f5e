//! Certificate rotation: polls the inbound cert and key files and swaps
//! the served certificate when they change.
//!
//! Kubernetes updates a mounted secret by swapping a symlink atomically, so
//! watching for events on the file names is unreliable; reading the two
//! files every `reload_interval` and comparing their contents is simple and
//! cheap (a few KiB). A changed pair is parsed and checked like at startup;
//! a broken one is logged and the current certificate stays. Only new
//! handshakes see the new certificate: open connections keep their session.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::pem;
use super::server::CertStore;
use crate::metrics::TlsMetrics;

/// The poller for one certificate store; run it with [`CertReloader::run`].
pub struct CertReloader {
    pub(super) store: Arc<CertStore>,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) interval: Duration,
    /// File contents last seen, loaded or not, so a broken pair is
    /// reported once rather than at every tick.
    pub(super) seen: (Vec<u8>, Vec<u8>),
    pub(super) metrics: TlsMetrics,
    pub(super) unreadable: bool,
}

impl CertReloader {
    /// Polls until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.check().await,
                () = &mut shutdown => break,
            }
        }
    }

    /// One poll: reload when either file's contents changed.
    pub async fn check(&mut self) {
        let (cert, key) = match (
            tokio::fs::read(&self.cert).await,
            tokio::fs::read(&self.key).await,
        ) {
            (Ok(cert), Ok(key)) => (cert, key),
            (Err(error), _) | (_, Err(error)) => {
                if !self.unreadable {
                    tracing::warn!(%error, cert = %self.cert.display(), key = %self.key.display(),
                        "cannot read the TLS certificate files; keeping the current certificate");
                }
                self.unreadable = true;
                return;
            }
        };
        self.unreadable = false;
        if (&cert, &key) == (&self.seen.0, &self.seen.1) {
            return;
        }
        match pem::certified_key(&cert, &key, &self.cert, &self.key) {
            Ok(loaded) => {
                if let Some(warning) = pem::expiry_warning(&loaded, &self.cert, SystemTime::now()) {
                    tracing::warn!("{warning}");
                }
                super::record_expiry(&self.metrics, &loaded);
                self.store.replace(loaded);
                self.metrics.reload("loaded");
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                self.metrics.reload("rejected");
                tracing::warn!(%error, "new TLS certificate rejected; keeping the current one");
            }
        }
        self.seen = (cert, key);
    }
}
