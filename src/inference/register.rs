//! The in-flight register: which inbound requests are in flight now.
//!
//! Sharded so that concurrent requests rarely contend: an entry goes to
//! the shard its span id (random) picks, into a freed slot of that shard
//! when there is one. Each shard keeps an atomic count of its live
//! entries, so a scan skips empty shards without locking them. A
//! candidate is remembered by its slot and context; it is still in flight
//! while its slot holds the same span id (a reused slot holds another).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Rule, Verdict};
use crate::span::SpanContext;

/// Number of shards: more than the cores a sidecar is given, so two
/// requests rarely pick the same one at the same time.
pub const SHARDS: usize = 16;

/// The inbound requests in flight in one sidecar.
pub struct Register {
    shards: [Shard; SHARDS],
}

/// One shard, alone on its cache line(s): neighbours never share a line.
#[repr(align(64))]
#[derive(Default)]
struct Shard {
    /// Live entries, read without the lock by scans.
    live: AtomicUsize,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    contexts: Vec<Option<SpanContext>>,
    /// Indexes of `None` slots, reused before the vector grows.
    free: Vec<u32>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding the lock; recover rather than spread one.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An inbound request in the register; dropping it takes it out.
pub struct Entry {
    register: Arc<Register>,
    shard: u8,
    slot: u32,
}

/// One candidate parent, as seen when a call started.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    shard: u8,
    slot: u32,
    context: SpanContext,
}

/// An outbound call between its start and its end.
pub struct PendingCall {
    start: Start,
}

enum Start {
    Nobody,
    One(SpanContext),
    Several(Arc<Register>, Vec<Candidate>),
}

impl Default for Register {
    fn default() -> Self {
        Self::new()
    }
}

impl Register {
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Shard::default()),
        }
    }

    /// Registers an inbound request whose SERVER span has `context`, until
    /// the returned entry is dropped (when the response has ended).
    pub fn enter(self: &Arc<Self>, context: SpanContext) -> Entry {
        let shard = (context.span_id.get() % SHARDS as u64) as u8;
        let at = &self.shards[usize::from(shard)];
        let mut slots = at.lock();
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.contexts[slot as usize] = Some(context);
                slot
            }
            None => {
                slots.contexts.push(Some(context));
                u32::try_from(slots.contexts.len() - 1).unwrap_or(u32::MAX)
            }
        };
        at.live.fetch_add(1, Ordering::Relaxed);
        drop(slots);
        Entry {
            register: Arc::clone(self),
            shard,
            slot,
        }
    }

    /// Inbound requests in flight now (a snapshot, for tests and logs).
    pub fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.live.load(Ordering::Relaxed))
            .sum()
    }

    /// Starts an outbound call: notes the inbound requests in flight now.
    /// A request registered after this cannot have caused the call.
    pub fn begin_call(self: &Arc<Self>) -> PendingCall {
        let mut first = None;
        let mut several = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if shard.live.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let slots = shard.lock();
            for (slot, context) in slots.contexts.iter().enumerate() {
                let Some(context) = *context else { continue };
                let candidate = Candidate {
                    shard: i as u8,
                    slot: slot as u32,
                    context,
                };
                match first {
                    None => first = Some(candidate),
                    Some(one) => {
                        if several.is_empty() {
                            several.push(one);
                        }
                        several.push(candidate);
                    }
                }
            }
        }
        let start = match (first, several.is_empty()) {
            (None, _) => Start::Nobody,
            (Some(one), true) => Start::One(one.context),
            (Some(_), false) => Start::Several(Arc::clone(self), several),
        };
        PendingCall { start }
    }

    /// Slots allocated over all shards (the register's peak size).
    #[cfg(test)]
    pub(super) fn shard_capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().contexts.len()).sum()
    }

    fn still_in_flight(&self, candidate: &Candidate) -> bool {
        let slots = self.shards[usize::from(candidate.shard)].lock();
        slots
            .contexts
            .get(candidate.slot as usize)
            .copied()
            .flatten()
            .is_some_and(|c| c.span_id == candidate.context.span_id)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let shard = &self.register.shards[usize::from(self.shard)];
        let mut slots = shard.lock();
        if let Some(slot) = slots.contexts.get_mut(self.slot as usize) {
            *slot = None;
            slots.free.push(self.slot);
        }
        shard.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PendingCall {
    /// The parent when exactly one inbound request was in flight at the
    /// call's start: the context to continue downstream.
    pub fn at_start(&self) -> Option<SpanContext> {
        match &self.start {
            Start::One(context) => Some(*context),
            _ => None,
        }
    }

    /// How many inbound requests were in flight at the call's start.
    pub fn candidates_at_start(&self) -> usize {
        match &self.start {
            Start::Nobody => 0,
            Start::One(_) => 1,
            Start::Several(_, candidates) => candidates.len(),
        }
    }

    /// Ends the call: the unique candidate at its start, else the one
    /// candidate in flight for its whole duration (containment), else an
    /// ambiguous verdict naming the candidates.
    pub fn finish(self) -> Verdict {
        match self.start {
            Start::Nobody => Verdict::NoCandidate,
            Start::One(parent) => Verdict::Inferred {
                parent,
                rule: Rule::OnlyOne,
            },
            Start::Several(register, candidates) => {
                let contained: Vec<SpanContext> = candidates
                    .iter()
                    .filter(|c| register.still_in_flight(c))
                    .map(|c| c.context)
                    .collect();
                match contained.as_slice() {
                    [parent] => Verdict::Inferred {
                        parent: *parent,
                        rule: Rule::Containment,
                    },
                    [] => Verdict::Ambiguous {
                        candidates: candidates.iter().map(|c| c.context).collect(),
                    },
                    _ => Verdict::Ambiguous {
                        candidates: contained,
                    },
                }
            }
        }
    }
}
