#!/usr/bin/env bash
# Runs the reliability suite against a release binary (default
# target/release/tracehop). Extra arguments go to reliability.py,
# e.g. --rate 800 --seconds 15 --only collector-killed,sigterm-mid-load.
set -euo pipefail
cd "$(dirname "$0")/../.."
binary="${1:-target/release/tracehop}"
shift || true
exec python3 tests/reliability/reliability.py "$binary" "$@"
