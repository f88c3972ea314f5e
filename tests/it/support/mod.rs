//! Test support: in-process fakes on 127.0.0.1:0 and a sidecar launcher.
//!
//! Everything waits on conditions with deadlines; nothing sleeps blindly.

pub mod client;
pub mod collector;
pub mod embedded;
pub mod raw;
pub mod upstream;
// The unit tests' helpers, the same file in both crates.
#[path = "../../../src/testing.rs"]
mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracehop::http1::path::Forced;

pub use client::Client;
pub use collector::FakeCollector;
pub use embedded::EmbeddedCollector;
pub use testing::closed_port;
pub use upstream::{FakeUpstream, Seen, upstream_with};

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Stops a background server when dropped.
pub struct Stopper(Option<oneshot::Sender<()>>);

impl Drop for Stopper {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds 127.0.0.1:0.
pub async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// A shutdown future and the guard that fires it.
pub fn stopper() -> (Stopper, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = oneshot::channel::<()>();
    (Stopper(Some(tx)), async move {
        let _ = rx.await;
    })
}

/// Awaits `future`, failing the test (naming `what`) after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Scrapes `{admin}/metrics` until the text contains `needle`; returns it.
pub async fn scrape_until(admin: &str, needle: &str) -> String {
    let client = Client::http1();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let text = client.get(&format!("{admin}/metrics"), &[]).await.body;
        if text.contains(needle) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for `{needle}` in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

tokio::task_local! {
    /// The paths every sidecar a test starts is forced onto (see
    /// [`on_every_path!`]); the default (automatic choice) outside it.
    static PATHS: Forced;
}

/// Runs `test` with every sidecar it starts forced onto `paths`.
pub async fn on_path<F: Future<Output = ()>>(paths: Forced, test: F) {
    PATHS.scope(paths, test).await;
}

/// Defines a test once and runs it on every combination of the HTTP/1.1
/// server path (direct or hyper) and the upstream path (kept connection
/// or pooled client), as one test each: `name::direct_kept`,
/// `name::direct_pooled`, `name::hyper_kept`, `name::hyper_pooled`. The
/// paths must behave alike; a test that fails on one names it.
#[macro_export]
macro_rules! on_every_path {
    ($(#[doc = $doc:literal])* async fn $name:ident() $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use tracehop::http1::path::Forced;

            async fn test() $body

            #[tokio::test]
            async fn direct_kept() {
                $crate::support::on_path(Forced { hyper: false, pooled: false }, test()).await;
            }

            #[tokio::test]
            async fn direct_pooled() {
                $crate::support::on_path(Forced { hyper: false, pooled: true }, test()).await;
            }

            #[tokio::test]
            async fn hyper_kept() {
                $crate::support::on_path(Forced { hyper: true, pooled: false }, test()).await;
            }

            #[tokio::test]
            async fn hyper_pooled() {
                $crate::support::on_path(Forced { hyper: true, pooled: true }, test()).await;
            }
        }
    };
}

/// The paths the current test forces (see [`on_every_path!`]).
pub fn forced_paths() -> Forced {
    PATHS.try_with(|paths| *paths).unwrap_or_default()
}

/// A started sidecar with its fakes.
pub struct Sidecar {
    pub running: tracehop::app::Running,
    pub base: String,
    pub admin: String,
}

/// Test config pieces; each string holds extra lines for its section,
/// indented by two spaces, or for `other`, whole top-level sections.
#[derive(Default)]
pub struct Yaml<'a> {
    pub inbound: &'a str,
    pub export: &'a str,
    pub other: &'a str,
}

impl Yaml<'_> {
    /// The full document: service `checkout`, the fakes as upstream and
    /// collector, fast batches, access log off, listeners on port 0.
    pub fn render(&self, upstream: SocketAddr, collector: SocketAddr) -> String {
        format!(
            "service:\n  name: checkout\nlog:\n  access_log: false\n\
             inbound:\n  listen: 127.0.0.1:0\n  upstream: http://{upstream}\n{}\
             admin:\n  listen: 127.0.0.1:0\n\
             export:\n  zipkin: http://{collector}/api/v2/spans\n  batch_interval: 20ms\n{}{}",
            self.inbound, self.export, self.other
        )
    }
}

impl Sidecar {
    /// Starts a sidecar in front of `upstream`, exporting to `collector`.
    pub async fn start(yaml: Yaml<'_>, upstream: SocketAddr, collector: SocketAddr) -> Self {
        let text = yaml.render(upstream, collector);
        let config = tracehop::config::load(&text, Default::default())
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
        Self::from_config(config).await
    }

    pub async fn from_config(mut config: tracehop::config::Config) -> Self {
        config.paths = PATHS.try_with(|paths| *paths).unwrap_or_default();
        let running = tracehop::app::start(config).await.expect("sidecar starts");
        let base = format!("http://{}", running.inbound_addr);
        let admin = format!("http://{}", running.admin_addr);
        Self {
            running,
            base,
            admin,
        }
    }

    /// Shuts down and waits, within the deadline.
    pub async fn stop(self) {
        self.running.shutdown();
        tokio::time::timeout(DEADLINE, self.running.wait())
            .await
            .expect("sidecar stops within the deadline");
    }
}
