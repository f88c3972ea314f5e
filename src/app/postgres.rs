//! The postgres routes: one [`postgres::Route`] per `protocol: postgres`
//! outbound route, and the accept loop that runs each.
//!
//! Uses the span sink, the live sampler and the metrics [`super::start`]
//! built; the handles go back to the shutdown supervisor with the other
//! listeners'.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::export::SpanSink;
use crate::inference::Register;
use crate::metrics::Metrics;
use crate::postgres::{self, Route, Telemetry};
use crate::sampling::LiveSampler;

/// Spawns one relay server per postgres route, on its bound listener
/// (`listeners` in `config.outbound.postgres` order).
pub(super) fn spawn_routes(
    config: &Config,
    listeners: Vec<TcpListener>,
    metrics: &Metrics,
    sink: &SpanSink,
    sampler: &LiveSampler,
    register: Option<Arc<Register>>,
    stopped: &dyn Fn() -> Box<dyn Future<Output = ()> + Send + Unpin>,
) -> Vec<JoinHandle<()>> {
    let telemetry = Telemetry {
        local_service: config.service.name.clone(),
        sampler: sampler.clone(),
        sink: sink.clone(),
        register,
    };
    config
        .outbound
        .postgres
        .iter()
        .zip(listeners)
        .map(|(route, listener)| {
            let route = Arc::new(Route::new(
                route,
                metrics.db.clone(),
                &metrics.outbound,
                telemetry.clone(),
            ));
            let grace = config.shutdown.grace_period;
            tokio::spawn(postgres::serve(listener, route, grace, stopped()))
        })
        .collect()
}
