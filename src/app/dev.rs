//! `tracehop dev`: the sidecar and the embedded collector in one process,
//! in front of a dev server, for local development.
//!
//! [`run_dev`] binds the collector (its viewer is where traces are read),
//! builds a sidecar config in front of the dev server that samples every
//! request and exports to that collector, adds a forward proxy for the
//! app's outbound calls (loopback plus the hosts the user allows, for
//! `HTTP_PROXY`), prints the URLs, and prints one summary line per request
//! until Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::signals::Signals;
use super::{AppError, Running, local_addr, start};
use crate::collector::{self, Collector, CollectorConfig};
use crate::config::{self, ConfigErrors, Overrides};

/// What `tracehop dev` was asked for.
#[derive(Clone, Debug)]
pub struct DevSettings {
    /// The dev server: `3000`, `127.0.0.1:3000` or a URL.
    pub target: String,
    /// The sidecar's listen address (port 0: a free port).
    pub listen: SocketAddr,
    /// The collector and viewer; when taken, a free port instead.
    pub collector: SocketAddr,
    pub service_name: String,
    /// Hosts the forward proxy reaches besides loopback (`host:port`,
    /// `*.suffix:port`, `host:*`).
    pub allow: Vec<String>,
}

/// The dev server's URL from what the user typed.
pub fn upstream_url(target: &str) -> String {
    if target.contains("://") {
        target.to_owned()
    } else if target.bytes().all(|b| b.is_ascii_digit()) {
        format!("http://127.0.0.1:{target}")
    } else {
        format!("http://{target}")
    }
}

/// The sidecar's configuration: every request sampled, spans to the
/// collector at `collector`, the forward proxy on a free port.
pub fn dev_config(
    settings: &DevSettings,
    collector: SocketAddr,
) -> Result<config::Config, ConfigErrors> {
    let mut allow = vec![
        "127.0.0.1:*".to_owned(),
        "localhost:*".to_owned(),
        "[::1]:*".to_owned(),
    ];
    allow.extend(settings.allow.iter().cloned());
    let allow = allow
        .iter()
        .map(|host| format!("\"{host}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let yaml = format!(
        "service: {{name: \"{name}\"}}\n\
         inbound: {{listen: \"{listen}\", upstream: \"{upstream}\"}}\n\
         outbound:\n  forward_proxy: {{listen: \"127.0.0.1:0\", allow: [{allow}], connect: true}}\n\
         admin: {{listen: \"127.0.0.1:0\"}}\n\
         sampling: {{root: {{type: ratio, ratio: 1}}}}\n\
         export: {{zipkin: \"http://{collector}/api/v2/spans\", batch_interval: 200ms}}\n\
         log: {{access_log: false}}\n\
         shutdown: {{drain_delay: 0s, grace_period: 2s}}\n",
        name = settings.service_name,
        listen = settings.listen,
        upstream = upstream_url(&settings.target),
    );
    let mut config = config::load(&yaml, Overrides::default())?;
    config.log.summary_viewer = Some(Arc::from(format!("http://{collector}")));
    Ok(config)
}

/// `tracehop dev`: runs until SIGINT or SIGTERM.
pub async fn run_dev(settings: DevSettings) -> Result<(), AppError> {
    let listener = match TcpListener::bind(settings.collector).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(addr = %settings.collector, %error, "collector address taken; using a free port");
            super::bind("the collector", SocketAddr::from(([127, 0, 0, 1], 0))).await?
        }
    };
    let collector_addr = local_addr(&listener, settings.collector);
    let config = dev_config(&settings, collector_addr).map_err(AppError::Material)?;
    let upstream = config.inbound.upstream.to_string();
    let signals = Signals::listen(false)?;
    let (stop_collector, collector_stopped) = watch::channel(false);
    let collector_task = tokio::spawn(collector::serve(
        Collector::new(CollectorConfig::default()),
        listener,
        async move {
            let mut stopped = collector_stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        },
    ));
    let running = start(config).await?;
    println!("{}", banner(&running, &upstream, collector_addr));
    signals.stopped().await;
    running.shutdown();
    running.wait().await;
    stop_collector.send_replace(true);
    let _ = collector_task.await;
    println!("tracehop dev stopped");
    Ok(())
}

/// What the user needs to know, once, at start.
fn banner(running: &Running, upstream: &str, collector: SocketAddr) -> String {
    let mut text = format!(
        "tracehop dev: in front of {upstream}, every request traced\n\
         \x20 send requests to  http://{}\n\
         \x20 traces            http://{collector}/\n",
        running.inbound_addr,
    );
    if let Some(proxy) = running.forward_proxy_addr {
        text.push_str(&format!(
            "  outbound calls    HTTP_PROXY=http://{proxy} (loopback and --allow hosts)\n"
        ));
    }
    text.push_str("Ctrl-C stops. One line per request:");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_server_is_a_port_an_address_or_a_url() {
        assert_eq!(upstream_url("3000"), "http://127.0.0.1:3000");
        assert_eq!(upstream_url("localhost:5173"), "http://localhost:5173");
        assert_eq!(
            upstream_url("https://127.0.0.1:8443"),
            "https://127.0.0.1:8443"
        );
    }

    #[test]
    fn the_dev_config_samples_everything_and_exports_to_the_collector() {
        let settings = DevSettings {
            target: "3000".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            collector: "127.0.0.1:9411".parse().unwrap(),
            service_name: "my-app".into(),
            allow: vec!["api.example.com:443".into()],
        };
        let config = dev_config(&settings, "127.0.0.1:9999".parse().unwrap()).expect("valid");
        assert_eq!(config.inbound.upstream.to_string(), "http://127.0.0.1:3000");
        assert_eq!(&*config.service.name, "my-app");
        assert_eq!(
            config.log.summary_viewer.as_deref(),
            Some("http://127.0.0.1:9999")
        );
        let text = config.to_yaml();
        assert!(
            text.contains("http://127.0.0.1:9999/api/v2/spans"),
            "{text}"
        );
        assert!(
            text.contains("api.example.com:443") && text.contains("127.0.0.1:*"),
            "{text}"
        );
    }
}
