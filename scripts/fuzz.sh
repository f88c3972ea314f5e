#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 20 s each),
# starting from the committed seeds (fuzz/seeds/<target>/). The growing
# corpus lives in fuzz/corpus/ (not committed); crashes land in
# fuzz/artifacts/<target>/. Needs nightly and cargo-fuzz:
#   cargo install cargo-fuzz --locked
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
for target in w3c b3 config; do
  mkdir -p "corpus/$target"
  echo "== fuzz $target (${seconds}s)"
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
done
echo "fuzz: ok. targets w3c b3 config, ${seconds}s each"
