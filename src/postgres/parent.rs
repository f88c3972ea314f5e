//! Where a query span's parent comes from: the one rule, in order.
//!
//! 1. The sqlcommenter `traceparent` in a leading or trailing comment of
//!    the query (the app's ORM or driver put it there).
//! 2. The inferred parent: the inbound request in flight at the query's
//!    start, when timing proves it is the only candidate (DESIGN §11).
//!    [`inferred`] is the seam for the sidecar's register of inbound
//!    requests in flight; until it is wired it yields no parent.
//! 3. None: the query is a root, and the root sampler decides (so a busy
//!    connection pool does not flood the collector).

use crate::span::SpanContext;

/// The parent of a query starting now whose text carried `commented`.
pub fn of(commented: Option<SpanContext>) -> Option<SpanContext> {
    commented.or_else(inferred)
}

/// The inferred parent of a query starting now: the SERVER span of the
/// unique inbound request in flight. The register of inbound requests in
/// flight is not part of this module; this seam is where it is asked.
fn inferred() -> Option<SpanContext> {
    None
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
        assert_eq!(of(Some(commented)), Some(commented));
        assert_eq!(of(None), None);
    }
}
