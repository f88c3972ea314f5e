//! One relayed connection's queries: the messages each side sends, paired
//! into queries, each ended as a CLIENT span and counted.
//!
//! The frontend's `Query` (simple protocol) and `Parse`/`Bind`/`Execute`/
//! `Sync` (extended protocol, docs §55.2.3) push pending work in the order
//! sent; the backend answers in that same order (§55.2.3: "responses ...
//! in the order the messages were sent"), so one FIFO pairs them even when
//! a client pipelines many batches:
//! - `ParseComplete` ends a `Parse` (no span: the statement has not run);
//! - `CommandComplete`, `PortalSuspended` end an `Execute` or the current
//!   statement of a simple query (a simple query with several statements
//!   gets one span per statement);
//! - `ErrorResponse` fails whatever is at the front, a `Parse` included
//!   (an unknown table fails at `Parse` with SQLSTATE 42P01); the server
//!   then skips to the next `Sync`, so `ReadyForQuery` drops what never ran.
//!
//! Transactions: every statement is a span of its own, `BEGIN` and
//! `COMMIT` included; a transaction is not a parent span (its statements
//! keep the parent they would have outside it).
//! Memory: the named statements and portals kept are bounded, and so is
//! the FIFO; past its bound the connection stops being traced (the relay
//! goes on).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::query::{self, Statement};
use super::wire::cstr;
use super::{Route, parent};
use crate::inference::{self, PendingCall};
use crate::sampling::Outcome;
use crate::span::{
    DbFacts, Endpoint, HttpFacts, Kind, Sampling, Span, SpanContext, SpanId, SpanTimer, Tag,
    TraceId,
};

/// Named prepared statements (and portals) remembered per connection.
const MAX_NAMED: usize = 1024;
/// Queries awaiting their answer per connection (a pipeline this deep is
/// far past what drivers send).
const MAX_PENDING: usize = 8192;
/// Body bytes kept of a message that carries SQL text: longer texts are
/// cut (the sanitiser makes a cut constant `?`).
pub const MAX_SQL_BYTES: usize = 16 * 1024;

/// The body bytes the session needs of each frontend message type.
pub fn frontend_limit(kind: u8) -> usize {
    match kind {
        b'Q' | b'P' => MAX_SQL_BYTES,
        // Names only: a portal and a statement name (NAMEDATALEN is 64),
        // never the parameter values that follow them.
        b'B' => 130,
        b'E' | b'C' => 66,
        b'S' => 1,
        _ => 0,
    }
}

/// The body bytes the session needs of each backend message type.
pub fn backend_limit(kind: u8) -> usize {
    match kind {
        // The SQLSTATE field comes early; the message text is never kept.
        b'E' => 256,
        b'C' => 64,
        b'1' | b'I' | b's' | b'Z' => 1,
        _ => 0,
    }
}

/// A statement prepared by `Parse`, with its sqlcommenter context.
#[derive(Debug)]
struct Prepared {
    statement: Option<Statement>,
    commented: Option<SpanContext>,
}

/// A query that started and is waiting for its answer.
#[derive(Debug)]
struct Op {
    statement: Statement,
    /// The sqlcommenter context the query carried (the app's own parent).
    commented: Option<SpanContext>,
    /// The parent known at the start ([`parent::of`]).
    parent: Option<SpanContext>,
    /// Parent inference, settled when the query ends (`None` when the
    /// sidecar infers no parents).
    call: Option<PendingCall>,
    timer: SpanTimer,
}

impl Op {
    fn start(statement: Statement, commented: Option<SpanContext>, route: &Route) -> Self {
        let call = route.telemetry.register.as_ref().map(|r| r.begin_call());
        Self {
            statement,
            commented,
            parent: parent::of(commented, call.as_ref()),
            call,
            timer: SpanTimer::start(),
        }
    }
}

/// What the backend is expected to answer next, in order.
#[derive(Debug)]
enum Pending {
    /// `None` when the statement is unknown (not traced).
    Parse(Option<Op>),
    Execute(Option<Op>),
    Sync,
    /// A simple query: the statement running now and those after it.
    Simple {
        current: Option<Op>,
        rest: VecDeque<Statement>,
        commented: Option<SpanContext>,
    },
}

/// How a query ended.
enum End<'a> {
    /// `CommandComplete` with its tag (`SELECT 3`), or `PortalSuspended`.
    Complete(Option<&'a [u8]>),
    /// `ErrorResponse` with its SQLSTATE.
    Error(Option<[u8; 5]>),
    /// The connection closed before the answer.
    Lost(&'static str),
}

/// The query state of one relayed connection.
pub struct Session {
    route: Arc<Route>,
    /// `db.namespace`: the startup message's database (its user when unset).
    database: Option<Arc<str>>,
    statements: HashMap<Box<[u8]>, Arc<Prepared>>,
    portals: HashMap<Box<[u8]>, Arc<Prepared>>,
    pending: VecDeque<Pending>,
    /// Tracing stopped on this connection (bounds exceeded, framing lost).
    off: bool,
    /// Spans finished and not yet handed off ([`Session::take_finished`]):
    /// the relay sends them once it has read a chunk.
    finished: Vec<Span>,
}

impl Session {
    pub fn new(route: Arc<Route>, database: Option<&str>) -> Self {
        Self {
            route,
            database: database.map(Arc::from),
            statements: HashMap::new(),
            portals: HashMap::new(),
            pending: VecDeque::new(),
            off: false,
            finished: Vec::new(),
        }
    }

    /// Hands the finished spans to the export queue: `try_send`, never
    /// waits (a full queue drops and counts).
    pub fn hand_off(&mut self) {
        for span in self.finished.drain(..) {
            self.route.telemetry.sink.send(span);
        }
    }

    /// The spans finished since the last call (tests look at them).
    pub fn take_finished(&mut self) -> std::vec::Drain<'_, Span> {
        self.finished.drain(..)
    }

    /// Whether no query is in flight (a pooled connection between uses).
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Stops tracing this connection; what is pending is forgotten.
    pub fn turn_off(&mut self) {
        self.off = true;
        self.pending.clear();
        self.statements.clear();
        self.portals.clear();
    }

    fn push(&mut self, pending: Pending) {
        if self.pending.len() >= MAX_PENDING {
            return self.turn_off();
        }
        self.pending.push_back(pending);
    }

    /// One frontend message (its body cut at [`frontend_limit`]).
    pub fn frontend(&mut self, kind: u8, body: &[u8]) {
        if self.off {
            return;
        }
        match kind {
            b'Q' => {
                let query = query::parse(&String::from_utf8_lossy(cstr(body).0));
                let mut rest: VecDeque<Statement> = query.statements.into();
                let current = rest
                    .pop_front()
                    .map(|s| Op::start(s, query.traceparent, &self.route));
                self.push(Pending::Simple {
                    current,
                    rest,
                    commented: query.traceparent,
                });
            }
            b'P' => {
                let (name, rest) = cstr(body);
                let query = query::parse(&String::from_utf8_lossy(cstr(rest).0));
                let prepared = Arc::new(Prepared {
                    statement: query.statements.into_iter().next(),
                    commented: query.traceparent,
                });
                let op = prepared
                    .statement
                    .clone()
                    .map(|s| Op::start(s, prepared.commented, &self.route));
                remember(&mut self.statements, name, prepared);
                self.push(Pending::Parse(op));
            }
            b'B' => {
                let (portal, rest) = cstr(body);
                match self.statements.get(cstr(rest).0).cloned() {
                    Some(prepared) => remember(&mut self.portals, portal, prepared),
                    None => {
                        self.portals.remove(portal);
                    }
                }
            }
            b'E' => {
                let op = self.portals.get(cstr(body).0).and_then(|prepared| {
                    let statement = prepared.statement.clone()?;
                    Some(Op::start(statement, prepared.commented, &self.route))
                });
                self.push(Pending::Execute(op));
            }
            b'S' => self.push(Pending::Sync),
            b'C' => {
                // Close: `S` statement or `P` portal, then its name.
                let name = cstr(body.get(1..).unwrap_or_default()).0;
                match body.first() {
                    Some(b'S') => self.statements.remove(name),
                    Some(b'P') => self.portals.remove(name),
                    _ => None,
                };
            }
            _ => {}
        }
    }

    /// One backend message (its body cut at [`backend_limit`]).
    pub fn backend(&mut self, kind: u8, body: &[u8]) {
        if self.off {
            return;
        }
        match kind {
            b'1' => {
                if let Some(Pending::Parse(_)) = self.pending.front() {
                    self.pending.pop_front();
                }
            }
            b'C' => self.complete(End::Complete(Some(cstr(body).0))),
            b's' => self.complete(End::Complete(None)),
            b'I' => {
                if let Some(Pending::Execute(_)) = self.pending.front() {
                    self.pending.pop_front();
                }
            }
            b'E' => self.complete(End::Error(sqlstate(body))),
            b'Z' => {
                while let Some(pending) = self.pending.pop_front() {
                    if matches!(pending, Pending::Sync | Pending::Simple { .. }) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    /// Ends the query at the front of the FIFO.
    fn complete(&mut self, end: End<'_>) {
        let failed = matches!(end, End::Error(_));
        match self.pending.front_mut() {
            Some(Pending::Simple {
                current,
                rest,
                commented,
            }) => {
                let op = current.take();
                // After an error the server runs none of the rest (§55.2.2).
                *current = match failed {
                    true => None,
                    false => rest
                        .pop_front()
                        .map(|s| Op::start(s, *commented, &self.route)),
                };
                if failed {
                    rest.clear();
                }
                if let Some(op) = op {
                    self.finish(op, end);
                }
            }
            Some(Pending::Parse(_)) if !failed => {}
            Some(Pending::Parse(_) | Pending::Execute(_)) => {
                if let Some(Pending::Parse(Some(op)) | Pending::Execute(Some(op))) =
                    self.pending.pop_front()
                {
                    self.finish(op, end);
                }
            }
            Some(Pending::Sync) | None => {}
        }
    }

    /// The connection closed: every query still waiting failed.
    pub fn close(&mut self, reason: &'static str) {
        for pending in std::mem::take(&mut self.pending) {
            match pending {
                Pending::Parse(Some(op)) | Pending::Execute(Some(op)) => {
                    self.finish(op, End::Lost(reason))
                }
                Pending::Simple {
                    current: Some(op), ..
                } => self.finish(op, End::Lost(reason)),
                _ => {}
            }
        }
    }

    /// Counts the query and finishes its span when sampled (or kept for
    /// failing).
    fn finish(&mut self, op: Op, end: End<'_>) {
        let duration_us = op.timer.duration_us();
        let failed = !matches!(end, End::Complete(_));
        let route = &self.route;
        let operation = op.statement.operation.as_deref();
        route
            .metrics
            .record_query(operation, failed, duration_us as f64 / 1e6);
        let mut span = Span {
            trace_id: op.parent.map_or_else(TraceId::random, |p| p.trace_id),
            id: SpanId::random(),
            parent_id: op.parent.map(|p| p.span_id),
            kind: Kind::Client,
            debug: false,
            timestamp_us: op.timer.timestamp_us,
            duration_us,
            local_service: route.telemetry.local_service.clone(),
            remote: Endpoint {
                service_name: Some(route.name.clone()),
                addr: route.upstream_addr,
            },
            http: HttpFacts::unused(),
            db: None,
            error: match end {
                End::Lost(reason) => Some(reason.into()),
                _ => None,
            },
            tags: Vec::new(),
            links: Vec::new(),
        };
        let mut incoming = op.parent.map_or(Sampling::Deferred, |p| p.sampling);
        if let Some(call) = op.call {
            // The same rule as an outbound HTTP call's (DESIGN §11).
            let settled = inference::settle(&mut span, call.finish(), op.commented.as_ref());
            if let Some(counters) = &route.parent_outcomes {
                counters.count(settled.outcome);
            }
            if let Some(sampling) = settled.sampling {
                incoming = sampling;
            }
        }
        let now = Instant::now();
        let sampler = route.telemetry.sampler.load();
        let decision = sampler.decide_query(incoming, span.trace_id, now);
        if !decision.sampling.is_sampled() {
            let outcome = Outcome {
                status: 0,
                upstream_failed: failed,
                grpc_failed: false,
                duration: Duration::from_micros(duration_us),
            };
            let Some(reason) = sampler.keep(&outcome, now) else {
                return;
            };
            span.tags.push(Tag {
                key: "sampling.reason".into(),
                value: reason.tag().into(),
            });
        }
        span.debug = decision.sampling == Sampling::Debug;
        span.db = Some(Box::new(self.facts(op.statement, &end)));
        self.finished.push(span);
    }

    fn facts(&self, statement: Statement, end: &End<'_>) -> DbFacts {
        let operation = statement.operation;
        DbFacts {
            system: "postgresql",
            namespace: self.database.clone(),
            returned_rows: match end {
                End::Complete(Some(tag)) => returned_rows(tag),
                _ => None,
            },
            status_code: match end {
                End::Error(code) => *code,
                _ => None,
            },
            operation,
            collection: statement.collection,
            query_text: statement.text,
            server: self.route.server.clone(),
        }
    }
}

/// Keeps `prepared` under `name`, unless the map is full (the unnamed
/// statement or portal, replaced all the time, always fits).
fn remember(map: &mut HashMap<Box<[u8]>, Arc<Prepared>>, name: &[u8], prepared: Arc<Prepared>) {
    if map.len() < MAX_NAMED || name.is_empty() || map.contains_key(name) {
        map.insert(name.into(), prepared);
    }
}

/// The `C` (SQLSTATE) field of an `ErrorResponse` body (§55.8: a type
/// byte, a NUL-terminated value, …, a final NUL).
fn sqlstate(mut body: &[u8]) -> Option<[u8; 5]> {
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            return None;
        }
        let (value, next) = cstr(rest);
        if field == b'C' {
            return value.try_into().ok();
        }
        body = next;
    }
    None
}

/// Rows returned, from a `CommandComplete` tag: `SELECT n`, `FETCH n`
/// (§55.7 "CommandComplete"); other commands count rows affected, not
/// returned.
fn returned_rows(tag: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(tag).ok()?;
    let (command, rows) = text.rsplit_once(' ')?;
    matches!(command, "SELECT" | "FETCH")
        .then(|| rows.parse().ok())
        .flatten()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
