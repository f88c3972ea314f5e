//! Recent tail-sampling decisions, for spans that arrive after them.
//!
//! A span can reach the collector after its trace was decided (a slow
//! sidecar's export batch, a retried upload, a trace decided early because
//! the buffer was full). It follows the decision when the decision is still
//! remembered: kept traces get the span stored and forwarded, dropped ones
//! lose it too. The cache holds the last `capacity` decisions (oldest
//! forgotten first), so its memory is fixed; a span arriving after its
//! decision was forgotten starts a new trace in the buffer.

use std::collections::{HashMap, VecDeque};

use crate::span::TraceId;

/// Counted per remembered decision against the memory bound: its map entry
/// (key, value, a hash table at up to twice its entries) and its place in
/// the order.
pub const ENTRY_BYTES: usize = 96;

/// The last `capacity` decisions.
#[derive(Debug)]
pub struct DecisionCache {
    capacity: usize,
    kept: HashMap<TraceId, bool>,
    order: VecDeque<TraceId>,
}

impl DecisionCache {
    /// An empty cache remembering at most `capacity` decisions.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            kept: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `trace_id` was kept, when its decision is remembered.
    pub fn get(&self, trace_id: TraceId) -> Option<bool> {
        self.kept.get(&trace_id).copied()
    }

    /// Remembers a decision, forgetting the oldest when full.
    pub fn insert(&mut self, trace_id: TraceId, kept: bool) {
        if self.kept.insert(trace_id, kept).is_none() {
            self.order.push_back(trace_id);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.kept.remove(&oldest);
            }
        }
    }

    /// Decisions remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: u128) -> TraceId {
        TraceId::new(value).unwrap()
    }

    #[test]
    fn remembers_the_last_decisions_and_forgets_the_oldest() {
        let mut cache = DecisionCache::new(2);
        cache.insert(id(1), true);
        cache.insert(id(2), false);
        assert_eq!(
            (cache.get(id(1)), cache.get(id(2))),
            (Some(true), Some(false))
        );
        cache.insert(id(3), true);
        assert_eq!(cache.get(id(1)), None, "the oldest is forgotten");
        assert_eq!(
            (cache.get(id(2)), cache.get(id(3))),
            (Some(false), Some(true))
        );
        // Deciding a remembered trace again updates it in place.
        cache.insert(id(3), false);
        assert_eq!((cache.len(), cache.get(id(3))), (2, Some(false)));
        assert_eq!(cache.get(id(9)), None);
    }
}
