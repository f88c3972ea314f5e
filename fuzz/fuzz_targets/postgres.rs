//! The PostgreSQL route's reading of the two streams it relays: any bytes
//! as the app's (frontend) and the database's (backend) messages. The
//! framing does not depend on how the socket chunks the bytes, nothing
//! panics, and every span the session makes of them encodes as Zipkin
//! JSON that parses.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tracehop::config::{self, Overrides};
use tracehop::export::{EncodeOptions, encode_spans};
use tracehop::metrics::Metrics;
use tracehop::postgres::session::{Session, backend_limit, frontend_limit};
use tracehop::postgres::wire::Framer;
use tracehop::postgres::{Route, Telemetry};
use tracehop::sampling::{LiveSampler, Sampler};

/// One message as the framer hands it over: its type and body prefix.
type Message = (u8, Vec<u8>);

fuzz_target!(|data: &[u8]| {
    // Three control bytes: where the frontend's bytes end, and the chunk size.
    let [high, low, chunk, rest @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_be_bytes([*high, *low])) % (rest.len() + 1);
    let (frontend, backend) = rest.split_at(split);
    let chunk = usize::from(*chunk).max(1);
    let from_app = messages(frontend, frontend_limit, chunk);
    let from_db = messages(backend, backend_limit, chunk);

    let mut session = Session::new(route().clone(), Some("shop"));
    // Each frontend message, then the backend's of the same position: the
    // order of a request and its answers.
    for i in 0..from_app.len().max(from_db.len()) {
        if let Some((kind, body)) = from_app.get(i) {
            session.frontend(*kind, body);
        }
        if let Some((kind, body)) = from_db.get(i) {
            session.backend(*kind, body);
        }
    }
    session.close("connection closed");
    let spans: Vec<_> = session.take_finished().collect();
    let mut json = Vec::new();
    encode_spans(&spans, &EncodeOptions::default(), &mut json);
    let parsed: Vec<serde_json::Value> =
        serde_json::from_slice(&json).expect("the spans' JSON parses");
    assert_eq!(parsed.len(), spans.len());
});

/// The messages of `stream` read in chunks of `chunk` bytes, which must be
/// the messages of the stream read at once.
fn messages(stream: &[u8], limit: fn(u8) -> usize, chunk: usize) -> Vec<Message> {
    let read = |size: usize| {
        let mut framer = Framer::new(limit);
        let mut out = Vec::new();
        for piece in stream.chunks(size) {
            framer.feed(piece, |kind, body| out.push((kind, body.to_vec())));
        }
        (out, framer.is_lost())
    };
    let whole = read(stream.len().max(1));
    assert_eq!(
        read(chunk),
        whole,
        "framing depends on chunking ({chunk} bytes)"
    );
    whole.0
}

/// A `users-db` route whose every query is sampled, made once: its
/// config, metrics and export queue cost far more than a run.
fn route() -> &'static Arc<Route> {
    static ROUTE: OnceLock<Arc<Route>> = OnceLock::new();
    ROUTE.get_or_init(|| {
        let yaml = "service: {name: user-service}\ninbound: {upstream: http://127.0.0.1:9}\n\
            outbound:\n  routes:\n    - {name: users-db, protocol: postgres, listen: 127.0.0.1:0, \
            upstream: tcp://127.0.0.1:5432}\nexport: {enabled: false}\n\
            sampling: {root: {type: always}}\n";
        let config = config::load(yaml, Overrides::default()).expect("a valid config");
        let metrics = Metrics::new();
        let (sink, _) =
            tracehop::export::channel(&config.export, &metrics.export, Default::default());
        let telemetry = Telemetry {
            local_service: config.service.name.clone(),
            sampler: LiveSampler::new(Sampler::new(&config.sampling, &metrics.sampling)),
            sink,
            register: None,
        };
        Arc::new(Route::new(
            &config.outbound.postgres[0],
            metrics.db.clone(),
            &metrics.outbound,
            telemetry,
        ))
    })
}
