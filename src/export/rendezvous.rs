//! Which collector endpoint a trace goes to: rendezvous hashing, also
//! called highest random weight (Thaler and Ravishankar, "Using name-based
//! mappings to increase hit rates", IEEE/ACM ToN 6(1), 1998).
//!
//! Each endpoint's weight for a trace is a hash of the endpoint's name and
//! the trace id; the trace goes to the endpoint of highest weight. So every
//! span of a trace, from every sidecar that lists the same endpoints (in any
//! order), lands on the same collector, which is what a tail-sampling
//! collector needs to see whole traces (as the OpenTelemetry Collector's
//! `loadbalancing` exporter does with its ring). When an endpoint joins, it
//! takes only the traces it now wins (about 1/n of them); when one leaves,
//! only its own traces move, each to its runner-up. Nothing else moves.
//!
//! The hash is fixed here, not `std`'s randomly keyed one: sidecars of
//! different processes (and versions) must agree on it.

use crate::span::TraceId;

/// The hash seed of the endpoint called `name` (its URL, or `ip:port` for
/// an address found by DNS): FNV-1a over the bytes, then mixed.
pub fn seed(name: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = name.bytes().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    mix(hash)
}

/// The weight of the endpoint with `seed` for `trace`.
pub fn weight(seed: u64, trace: TraceId) -> u64 {
    let id = trace.get();
    // Both halves count (a 64-bit B3 trace id has a zero high half), each
    // mixed with the seed in turn so that no pattern between the halves
    // cancels the endpoint out.
    let high = (id >> 64) as u64;
    let low = id as u64;
    mix(mix(seed ^ high) ^ low)
}

/// The index in `seeds` of the endpoint `trace` goes to; `None` when
/// there is no endpoint. Ties (a 2^-64 chance) go to the larger seed, so
/// the choice never depends on the order of the list.
pub fn pick(trace: TraceId, seeds: impl IntoIterator<Item = u64>) -> Option<usize> {
    seeds
        .into_iter()
        .enumerate()
        .max_by_key(|&(_, seed)| (weight(seed, trace), seed))
        .map(|(index, _)| index)
}

/// SplitMix64's finalizer (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014): every input bit changes
/// about half the output bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACES: u32 = 30_000;

    /// Trace ids as sidecars make them: random, from a fixed generator so
    /// the test is repeatable.
    fn traces() -> impl Iterator<Item = TraceId> {
        (1..=u64::from(TRACES)).map(|i| {
            let a = mix(i);
            let b = mix(i ^ 0x5555_5555_5555_5555);
            TraceId::new((u128::from(a) << 64) | u128::from(b)).expect("non-zero")
        })
    }

    fn seeds(names: &[&str]) -> Vec<u64> {
        names.iter().map(|name| seed(name)).collect()
    }

    fn owner<'a>(trace: TraceId, names: &[&'a str]) -> &'a str {
        names[pick(trace, seeds(names)).expect("endpoints")]
    }

    const THREE: [&str; 3] = [
        "http://collector-0:9411/api/v2/spans",
        "http://collector-1:9411/api/v2/spans",
        "http://collector-2:9411/api/v2/spans",
    ];

    #[test]
    fn the_choice_is_fixed_across_processes_and_list_orders() {
        // Pinned values (computed independently of this code): a sidecar
        // of another build must pick the same collector, so the hash may
        // never change.
        let trace = TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap();
        assert_eq!(seed(THREE[0]), 0x97dc_9b77_2d7d_a6d0);
        assert_eq!(seed(THREE[1]), 0x7f00_214f_02d1_dd27);
        assert_eq!(weight(seed(THREE[0]), trace), 0xfafe_b5ae_dd67_f7d4);
        assert_eq!(weight(seed(THREE[2]), trace), 0x9e78_edbf_39d7_76b9);
        let names = THREE;
        let chosen = owner(trace, &names);
        assert_eq!(chosen, THREE[0]);
        let mut reversed = names;
        reversed.reverse();
        assert_eq!(owner(trace, &reversed), chosen);
        for trace in traces().take(1000) {
            let mut rotated = names;
            rotated.rotate_left(1);
            assert_eq!(owner(trace, &names), owner(trace, &rotated));
        }
        assert_eq!(pick(trace, []), None);
        assert_eq!(pick(trace, [7]), Some(0));
    }

    #[test]
    fn traces_spread_evenly() {
        for n in [2usize, 3, 5, 8] {
            let names: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:9411")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let seeds = seeds(&names);
            let mut counts = vec![0u32; n];
            for trace in traces() {
                counts[pick(trace, seeds.iter().copied()).unwrap()] += 1;
            }
            let fair = f64::from(TRACES) / n as f64;
            for (name, count) in names.iter().zip(&counts) {
                let off = (f64::from(*count) - fair).abs() / fair;
                // 30,000 draws: a fair share's standard error is under
                // 1.5 %; 5 % is over three of them.
                assert!(
                    off < 0.05,
                    "{n} endpoints: {name} got {count} of {TRACES} ({counts:?})"
                );
            }
        }
    }

    #[test]
    fn a_joining_endpoint_takes_only_its_share() {
        let four = [
            THREE[0],
            THREE[1],
            THREE[2],
            "http://collector-3:9411/api/v2/spans",
        ];
        let mut moved = 0u32;
        for trace in traces() {
            let before = owner(trace, &THREE);
            let after = owner(trace, &four);
            if before != after {
                assert_eq!(after, four[3], "a trace moved between old endpoints");
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(TRACES);
        assert!((share - 0.25).abs() < 0.02, "moved {share}");
    }

    #[test]
    fn a_leaving_endpoint_moves_only_its_own_traces() {
        let two = [THREE[0], THREE[2]];
        let mut moved = 0u32;
        for trace in traces() {
            let before = owner(trace, &THREE);
            let after = owner(trace, &two);
            if before == THREE[1] {
                moved += 1;
            } else {
                assert_eq!(before, after, "a trace of a staying endpoint moved");
            }
        }
        let share = f64::from(moved) / f64::from(TRACES);
        assert!((share - 1.0 / 3.0).abs() < 0.02, "moved {share}");
    }

    #[test]
    fn sixty_four_bit_trace_ids_spread_too() {
        let seeds = seeds(&THREE);
        let mut counts = [0u32; 3];
        for i in 1..=u64::from(TRACES) {
            let trace = TraceId::new(u128::from(mix(i))).unwrap();
            counts[pick(trace, seeds.iter().copied()).unwrap()] += 1;
        }
        let fair = f64::from(TRACES) / 3.0;
        assert!(
            counts
                .iter()
                .all(|c| (f64::from(*c) - fair).abs() / fair < 0.05),
            "{counts:?}"
        );
    }
}
