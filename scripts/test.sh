#!/usr/bin/env bash
# The test command: formatting, lints, then unit, API (real etcd + kubectl) and end-to-end
# (real Docker clusters) tests. Everything runs in release: the node image carries this binary.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/tools/kubectl ] || scripts/fetch-kubectl.sh
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace -- --test-threads=2
