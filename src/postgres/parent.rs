//! Where a query span's parent comes from: the one rule, in order.
//!
//! 1. The sqlcommenter `traceparent` in a leading or trailing comment of
//!    the query (the app's ORM or driver put it there).
//! 2. The inferred parent: the only inbound request in flight at the
//!    query's start, from the sidecar's register ([`crate::inference`]);
//!    with several in flight, the query's end may still name one by
//!    containment (settled with the span, in `session`).
//! 3. None: the query is a root, and the root sampler decides (so a busy
//!    connection pool does not flood the collector).

use crate::inference::PendingCall;
use crate::span::SpanContext;

/// The parent of a query starting now whose text carried `commented`;
/// `call` is its place in parent inference, if the sidecar infers.
pub fn of(commented: Option<SpanContext>, call: Option<&PendingCall>) -> Option<SpanContext> {
    commented.or_else(|| call.and_then(PendingCall::at_start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Sampling, SpanId, TraceId};

    #[test]
    fn a_commented_parent_wins_and_none_is_a_root() {
        let commented = SpanContext {
            trace_id: TraceId::new(7).unwrap(),
            span_id: SpanId::new(9).unwrap(),
            sampling: Sampling::Sampled,
            random: false,
        };
        assert_eq!(of(Some(commented), None), Some(commented));
        assert_eq!(of(None, None), None);
        // The one inbound request in flight is the parent, unless the
        // query says otherwise.
        let register = std::sync::Arc::new(crate::inference::Register::new());
        let inbound = SpanContext {
            span_id: SpanId::new(11).unwrap(),
            ..commented
        };
        let _entry = register.enter(inbound);
        let call = register.begin_call();
        assert_eq!(of(None, Some(&call)), Some(inbound));
        assert_eq!(of(Some(commented), Some(&call)), Some(commented));
    }
}
