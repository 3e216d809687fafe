#!/usr/bin/env bash
# The one test command (README "Test"): installs what the tests need, then
# runs every test in the workspace and the embedding example.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked
# The embedding example must keep working as documented.
cargo run --quiet --locked --example custom_listener >/dev/null
echo "scripts/test.sh: all tests passed"
