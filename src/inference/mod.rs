//! Inferred parents: connecting an app's outbound calls to the inbound
//! request that caused them when the app copies no trace headers.
//!
//! A sidecar sees both sides of its app: every inbound request in flight
//! and every outbound call the app makes through it. When timing proves
//! that only one inbound request can have caused a call, that request is
//! the call's parent; otherwise nothing is guessed (DESIGN.md §11).
//!
//! # The rules, for one outbound call (decided when it starts)
//!
//! 1. The app sent trace context on the call: it is used, nothing is
//!    inferred. The sidecar still computes what it would have inferred and
//!    compares ([`Outcome::judge`]): `confirmed` or `contradicted`. This
//!    is the precision measured in production.
//! 2. Exactly one inbound request is in flight: it is the parent. The
//!    CLIENT span joins its trace and the context sent downstream
//!    continues that trace ([`PendingCall::at_start`]).
//! 3. Several are in flight: the decision waits for the call's end; only
//!    candidates in flight for the whole call are kept (a synchronous
//!    handler's request outlives the calls it makes). One left: it is the
//!    parent. Otherwise the CLIENT span stays the root of its own trace,
//!    tagged `ambiguous` with the candidates (links in OTLP).
//! 4. None in flight: a root, as without inference.
//!
//! **What goes downstream in case 3.** The header must be written when the
//! call starts, before its end is known, so a call that starts with
//! several candidates sends a new trace (the CLIENT span's own context, as
//! without inference). When containment later names the parent, the
//! CLIENT span moves into the parent's trace and records the downstream's
//! trace id in `tracehop.parent.downstream_trace_id`: the downstream part
//! of that call stays findable but is not joined. Sending the context of
//! one candidate instead would be a guess, and a wrong guess cannot be
//! taken back once the next service has it.
//!
//! The assumption behind rules 2 and 3 is that calls are made by the
//! request being handled. A fire-and-forget call that outlives the
//! request that made it is not attributed when every candidate ended
//! before it did; it is wrongly attributed only if exactly one *other*
//! request spanned the whole call, or was the only one in flight when it
//! started (a background job of the app calling out while one unrelated
//! request is in flight looks the same as that request's call). The
//! `contradicted` count is how an operator sees whether the assumption
//! holds for their app.
//!
//! # API (any route, HTTP or not)
//!
//! One [`Register`] per sidecar, created by `app` and shared by the
//! inbound listener and every outbound listener:
//!
//! - the inbound listener calls [`Register::enter`] with its SERVER span's
//!   context when a request starts and holds the [`Entry`] until the
//!   response has ended (dropping it leaves the register);
//! - an outbound route calls [`Register::begin_call`] when a call starts,
//!   uses [`PendingCall::at_start`] for the context it sends when the app
//!   sent none, and at the call's end turns [`PendingCall::finish`]'s
//!   [`Verdict`] into span changes and a counted [`Outcome`] with
//!   [`settle`].
//!
//! Cost: entering locks one of [`SHARDS`] small mutexes chosen by the
//! span id (random), so concurrent requests rarely meet, and reuses a
//! freed slot (no allocation once the register has grown to the peak
//! concurrency). Only outbound calls scan the shards, skipping empty ones
//! without locking.

mod register;

pub use register::{Entry, PendingCall, Register, SHARDS};

use std::borrow::Cow;

use crate::span::{Sampling, Span, SpanContext, Tag};

/// The span tag that says how the parent was found (`inferred`, `ambiguous`).
pub const PARENT_TAG: &str = "tracehop.parent";
/// How many candidates an ambiguous call had.
pub const CANDIDATES_TAG: &str = "tracehop.parent.candidates";
/// The trace the downstream part of a call inferred by containment went to.
pub const DOWNSTREAM_TRACE_TAG: &str = "tracehop.parent.downstream_trace_id";

/// Which rule named the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The only inbound request in flight when the call started; the
    /// context sent downstream continues its trace.
    OnlyOne,
    /// The only candidate in flight for the whole call; known at its end.
    Containment,
}

/// What inference concludes about one outbound call, at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Inferred {
        parent: SpanContext,
        rule: Rule,
    },
    /// Several requests could have caused the call: those in flight for
    /// the whole call, or, when none was, those in flight at its start.
    Ambiguous {
        candidates: Vec<SpanContext>,
    },
    /// No inbound request was in flight when the call started.
    NoCandidate,
}

/// The `outcome` label of `tracehop_inferred_parents_total`: what the
/// sidecar did for a call without context, or how inference compared with
/// the real parent of a call with context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No context sent; a parent inferred.
    Inferred,
    /// No context sent; several candidates, the span starts its own trace.
    Ambiguous,
    /// No context sent; no inbound request in flight.
    NoCandidate,
    /// Context sent; inference named the same parent.
    Confirmed,
    /// Context sent; inference named another parent. Must stay 0.
    Contradicted,
    /// Context sent; inference would have found several candidates.
    WouldBeAmbiguous,
    /// Context sent; no inbound request was in flight.
    WouldBeNoCandidate,
}

impl Outcome {
    /// Every outcome, in label order (the metric creates each at zero).
    pub const ALL: [Outcome; 7] = [
        Outcome::Inferred,
        Outcome::Ambiguous,
        Outcome::NoCandidate,
        Outcome::Confirmed,
        Outcome::Contradicted,
        Outcome::WouldBeAmbiguous,
        Outcome::WouldBeNoCandidate,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Inferred => "inferred",
            Outcome::Ambiguous => "ambiguous",
            Outcome::NoCandidate => "no_candidate",
            Outcome::Confirmed => "confirmed",
            Outcome::Contradicted => "contradicted",
            Outcome::WouldBeAmbiguous => "would_be_ambiguous",
            Outcome::WouldBeNoCandidate => "would_be_no_candidate",
        }
    }

    /// The outcome of `verdict` for a call whose app sent `sent` (its
    /// real parent) or nothing. Inference agrees when it names the very
    /// span the app's context names: same trace id and same span id (an
    /// app that copies headers sends the inbound SERVER span's context).
    pub fn judge(verdict: &Verdict, sent: Option<&SpanContext>) -> Outcome {
        match (verdict, sent) {
            (Verdict::Inferred { parent, .. }, Some(real)) => {
                if parent.trace_id == real.trace_id && parent.span_id == real.span_id {
                    Outcome::Confirmed
                } else {
                    Outcome::Contradicted
                }
            }
            (Verdict::Ambiguous { .. }, Some(_)) => Outcome::WouldBeAmbiguous,
            (Verdict::NoCandidate, Some(_)) => Outcome::WouldBeNoCandidate,
            (Verdict::Inferred { .. }, None) => Outcome::Inferred,
            (Verdict::Ambiguous { .. }, None) => Outcome::Ambiguous,
            (Verdict::NoCandidate, None) => Outcome::NoCandidate,
        }
    }
}

/// What [`settle`] changed beyond the span record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    pub outcome: Outcome,
    /// The parent's sampling decision, when the span moved into the
    /// parent's trace at the call's end: the span is exported with its
    /// trace, or not at all.
    pub sampling: Option<Sampling>,
}

/// Applies `verdict` to the CLIENT span of a call whose app sent `sent`
/// (or nothing), and says which [`Outcome`] to count. A call with context
/// keeps its span untouched. The one place the parent tags are written.
pub fn settle(span: &mut Span, verdict: Verdict, sent: Option<&SpanContext>) -> Settled {
    let outcome = Outcome::judge(&verdict, sent);
    let mut settled = Settled {
        outcome,
        sampling: None,
    };
    if sent.is_some() {
        return settled;
    }
    match verdict {
        Verdict::Inferred { parent, rule } => {
            if rule == Rule::Containment {
                span.tags
                    .push(tag(DOWNSTREAM_TRACE_TAG, span.trace_id.to_string().into()));
                span.trace_id = parent.trace_id;
                span.parent_id = Some(parent.span_id);
                span.debug = parent.sampling == Sampling::Debug;
                settled.sampling = Some(parent.sampling);
            }
            span.tags.push(tag(PARENT_TAG, "inferred".into()));
        }
        Verdict::Ambiguous { candidates } => {
            span.tags.push(tag(PARENT_TAG, "ambiguous".into()));
            span.tags
                .push(tag(CANDIDATES_TAG, candidates.len().to_string().into()));
            span.links = candidates;
        }
        Verdict::NoCandidate => {}
    }
    settled
}

fn tag(key: &'static str, value: Cow<'static, str>) -> Tag {
    Tag {
        key: key.into(),
        value,
    }
}

#[cfg(test)]
mod tests;
