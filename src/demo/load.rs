//! Steady traffic for the demo (`tracehop demo --load RPS`).
//!
//! [`generate_load`] sends `rps` requests a second to the api-gateway,
//! cycling through a fixed mix of its endpoints that includes unknown ids
//! (404), a provoked failure (500) and a provoked slow request, so the trace
//! viewer always has errors and slow traces to show. Requests are spaced by
//! a `tokio::time::interval` that skips missed ticks rather than bursting to
//! catch up, and at most [`MAX_IN_FLIGHT`] are outstanding: against a slow
//! gateway the load drops ticks (counted as skipped) instead of piling up
//! tasks. The scheduling (`drive`) is separate from the HTTP sending so it
//! can be tested under paused time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// Requests outstanding at most; a tick that finds this many is skipped.
pub const MAX_IN_FLIGHT: usize = 64;

/// How long requests still in flight at shutdown may take to finish.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// A request that takes longer than this counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The shortest spacing between requests (10 000 requests a second).
const MIN_PERIOD: Duration = Duration::from_micros(100);

/// The requests sent, in turn. Out of 20: 2 unknown ids (404), 1 provoked
/// failure (500), 1 provoked slow request, the rest ordinary reads.
const MIX: [&str; 20] = [
    "/api/users",
    "/api/orders/1001",
    "/api/users/999",
    "/api/orders",
    "/api/users/1",
    "/api/orders/1002?fail=1",
    "/api/orders/1002",
    "/api/users/2",
    "/api/orders/1003",
    "/api/orders/1004?delay=250ms",
    "/api/users/3",
    "/api/orders/1004",
    "/api/users",
    "/api/orders/9999",
    "/api/users/4",
    "/api/orders/1005",
    "/api/orders",
    "/api/users/5",
    "/api/orders/1006",
    "/api/users/1",
];

/// What a load run did, for its closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Requests started; each ends up in exactly one of the next four counts.
    pub sent: u64,
    /// 2xx (and 1xx/3xx) answers.
    pub ok: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// No answer: connection failure, timeout, or still open at shutdown.
    pub failed: u64,
    /// Ticks not sent because [`MAX_IN_FLIGHT`] requests were outstanding.
    pub skipped: u64,
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests: {} ok, {} 4xx, {} 5xx, {} failed",
            self.sent, self.ok, self.client_errors, self.server_errors, self.failed
        )?;
        if self.skipped > 0 {
            write!(f, "; {} skipped (gateway too slow)", self.skipped)?;
        }
        Ok(())
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    ClientError,
    ServerError,
    Failed,
}

impl Outcome {
    fn of(status: StatusCode) -> Self {
        if status.is_server_error() {
            Outcome::ServerError
        } else if status.is_client_error() {
            Outcome::ClientError
        } else {
            Outcome::Ok
        }
    }
}

impl LoadSummary {
    fn record(&mut self, outcome: Outcome) {
        let count = match outcome {
            Outcome::Ok => &mut self.ok,
            Outcome::ClientError => &mut self.client_errors,
            Outcome::ServerError => &mut self.server_errors,
            Outcome::Failed => &mut self.failed,
        };
        *count += 1;
    }
}

/// Sends `rps` requests a second to the api-gateway at `gateway` (a base
/// URL such as `http://127.0.0.1:8080`) until `shutdown` completes, then
/// gives requests in flight a short grace period and returns the counts.
pub async fn generate_load(
    gateway: Uri,
    rps: u32,
    shutdown: impl Future<Output = ()>,
) -> LoadSummary {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // Built once; an unusable base URL makes every request fail.
    let targets: Vec<Option<Uri>> = MIX.iter().map(|path| target(&gateway, path)).collect();
    let send = move |n: u64| {
        let client = client.clone();
        let uri = targets[mix_index(n)].clone();
        async move {
            match uri {
                Some(uri) => send(&client, uri).await,
                None => Outcome::Failed,
            }
        }
    };
    drive(rps, MAX_IN_FLIGHT, shutdown, send).await
}

/// The position in [`MIX`] of the `n`th request.
fn mix_index(n: u64) -> usize {
    // The remainder is below MIX.len(), so it fits.
    (n % MIX.len() as u64) as usize
}

/// `gateway` with its path replaced by `path`.
fn target(gateway: &Uri, path: &str) -> Option<Uri> {
    let mut parts = gateway.clone().into_parts();
    parts.path_and_query = Some(path.parse().ok()?);
    Uri::from_parts(parts).ok()
}

async fn send(client: &Client<HttpConnector, Empty<Bytes>>, uri: Uri) -> Outcome {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("tracehop-load"),
    );
    let exchange = async {
        let response = client.request(request).await.ok()?;
        let outcome = Outcome::of(response.status());
        // Read the body so the connection goes back to the pool.
        response.into_body().collect().await.ok()?;
        Some(outcome)
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) | Err(_) => Outcome::Failed,
    }
}

/// Calls `send(n)` for n = 0, 1, … at `rps` a second, at most
/// `max_in_flight` outstanding, until `shutdown`; then drains.
async fn drive<S, F>(
    rps: u32,
    max_in_flight: usize,
    shutdown: impl Future<Output = ()>,
    mut send: S,
) -> LoadSummary
where
    S: FnMut(u64) -> F,
    F: Future<Output = Outcome> + Send + 'static,
{
    let mut summary = LoadSummary::default();
    tokio::pin!(shutdown);
    if rps == 0 {
        shutdown.await;
        return summary;
    }
    let period = (Duration::from_secs(1) / rps).max(MIN_PERIOD);
    let mut ticks = tokio::time::interval(period);
    // A late tick is dropped, not made up for with a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = in_flight.join_next() => {
                summary.record(done.unwrap_or(Outcome::Failed));
            }
            _ = ticks.tick() => {
                if in_flight.len() < max_in_flight {
                    in_flight.spawn(send(summary.sent));
                    summary.sent += 1;
                } else {
                    summary.skipped += 1;
                }
            }
        }
    }
    drain(&mut in_flight, &mut summary).await;
    summary
}

/// Waits up to [`DRAIN_GRACE`] for requests in flight; the rest are
/// cancelled and counted as failed.
async fn drain(in_flight: &mut JoinSet<Outcome>, summary: &mut LoadSummary) {
    let finish = async {
        while let Some(done) = in_flight.join_next().await {
            summary.record(done.unwrap_or(Outcome::Failed));
        }
    };
    if tokio::time::timeout(DRAIN_GRACE, finish).await.is_err() {
        summary.failed += in_flight.len() as u64;
        in_flight.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::watch;

    use super::*;
    use crate::server::{self, ConnInfo, ServerOptions};

    /// The status the seeded demo answers for a mix path.
    fn expected_status(path: &str) -> StatusCode {
        if path.contains("fail=1") {
            StatusCode::INTERNAL_SERVER_ERROR
        } else if path.ends_with("/999") || path.ends_with("/9999") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        }
    }

    #[test]
    fn the_mix_has_errors_and_slow_requests() {
        let count = |predicate: fn(&str) -> bool| MIX.iter().filter(|path| predicate(path)).count();
        assert_eq!(
            count(|path| expected_status(path) == StatusCode::NOT_FOUND),
            2
        );
        assert_eq!(count(|path| path.contains("fail=1")), 1);
        assert_eq!(count(|path| path.contains("delay=")), 1);
        assert_eq!(count(|path| path.starts_with("/api/")), MIX.len());
        assert_eq!(mix_index(0), 0);
        assert_eq!(mix_index(21), 1);
        assert_eq!(mix_index(u64::MAX), (u64::MAX % 20) as usize);
    }

    #[test]
    fn targets_keep_the_gateway_authority() {
        let gateway: Uri = "http://127.0.0.1:8080".parse().expect("valid");
        let uri = target(&gateway, "/api/orders/1004?delay=250ms").expect("valid");
        assert_eq!(
            uri.to_string(),
            "http://127.0.0.1:8080/api/orders/1004?delay=250ms"
        );
        let relative: Uri = "/only/a/path".parse().expect("valid");
        assert_eq!(
            target(&relative, "/api/users").map(|uri| uri.to_string()),
            Some("/api/users".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sends_at_the_asked_rate() {
        let shutdown = tokio::time::sleep(Duration::from_secs(2));
        let outcomes = [
            Outcome::Ok,
            Outcome::ClientError,
            Outcome::ServerError,
            Outcome::Failed,
        ];
        let summary = drive(10, 64, shutdown, |n| {
            let outcome = outcomes[(n % 4) as usize];
            async move { outcome }
        })
        .await;
        // Ticks at 0 ms, 100 ms, … 1900 ms; shutdown wins the tie at 2 s.
        assert_eq!(
            summary,
            LoadSummary {
                sent: 20,
                ok: 5,
                client_errors: 5,
                server_errors: 5,
                failed: 5,
                skipped: 0,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_gateway_caps_requests_in_flight() {
        let shutdown = tokio::time::sleep(Duration::from_secs(1));
        let summary = drive(10, 3, shutdown, |_| std::future::pending::<Outcome>()).await;
        // Three started and never answered (failed after the drain grace),
        // the other seven ticks skipped.
        assert_eq!(summary.sent, 3);
        assert_eq!(summary.skipped, 7);
        assert_eq!(summary.failed, 3);
        assert_eq!(
            summary.ok + summary.client_errors + summary.server_errors,
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_rps_sends_nothing() {
        let shutdown = tokio::time::sleep(Duration::from_secs(1));
        let summary = drive(0, 64, shutdown, |_| async { Outcome::Ok }).await;
        assert_eq!(summary, LoadSummary::default());
    }

    #[test]
    fn summary_line() {
        let mut summary = LoadSummary {
            sent: 20,
            ok: 16,
            client_errors: 2,
            server_errors: 1,
            failed: 1,
            skipped: 0,
        };
        assert_eq!(
            summary.to_string(),
            "20 requests: 16 ok, 2 4xx, 1 5xx, 1 failed"
        );
        summary.skipped = 4;
        assert_eq!(
            summary.to_string(),
            "20 requests: 16 ok, 2 4xx, 1 5xx, 1 failed; 4 skipped (gateway too slow)"
        );
    }

    /// Real sockets, real time: a fake gateway answering like the demo
    /// does; the run stops once it has seen a whole cycle of the mix.
    #[tokio::test]
    async fn sends_the_whole_mix_over_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("bound address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (count, mut counted) = watch::channel(0usize);
        let log = Arc::clone(&seen);
        let handler = move |request: hyper::Request<crate::server::RequestBody>, _: ConnInfo| {
            let path = request.uri().to_string();
            let status = expected_status(&path);
            log.lock().expect("not poisoned").push(path);
            count.send_modify(|count| *count += 1);
            async move { server::text_response(status, "") }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let gateway = tokio::spawn(server::serve(
            listener,
            ServerOptions::default(),
            handler,
            async {
                let _ = stopped.await;
            },
        ));

        let base: Uri = format!("http://{address}").parse().expect("valid");
        let whole_cycle = async move {
            let _ = counted.wait_for(|count| *count >= MIX.len()).await;
        };
        let summary = tokio::time::timeout(
            Duration::from_secs(10),
            generate_load(base, 200, whole_cycle),
        )
        .await
        .expect("a cycle within the deadline");
        let _ = stop.send(());
        gateway.await.expect("fake gateway stops");

        let seen = seen.lock().expect("not poisoned").clone();
        for path in MIX {
            assert!(
                seen.iter().any(|seen| seen == path),
                "{path} was never sent"
            );
        }
        assert_eq!(summary.sent, seen.len() as u64);
        assert_eq!(summary.failed, 0, "{summary}");
        assert_eq!(
            summary.ok + summary.client_errors + summary.server_errors,
            summary.sent
        );
        assert!(summary.client_errors >= 2, "{summary}");
        assert!(summary.server_errors >= 1, "{summary}");
    }
}
