#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 20 s each),
# starting from the committed seeds (fuzz/seeds/<target>/). The growing
# corpus lives in fuzz/corpus/ (not committed); crashes land in
# fuzz/artifacts/<target>/. An input that runs for 30 s is a hang. The
# http1_* targets are differential (tracehop's HTTP/1.1 code against
# hyper's); their module docs list the differences they allow. Needs
# nightly and cargo-fuzz:
#   cargo install cargo-fuzz --locked
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
targets="w3c b3 config http1_requests http1_responses collector postgres"
for target in $targets; do
  mkdir -p "corpus/$target"
  echo "== fuzz $target (${seconds}s)"
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=30 -print_final_stats=1
done
echo "fuzz: ok. targets $targets, ${seconds}s each"
