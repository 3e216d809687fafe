#!/usr/bin/env bash
# The one test command (README "Test"): installs what the tests need, then
# runs every test in the workspace and the embedding example.
set -euo pipefail
cd "$(dirname "$0")/.."

# The PostgreSQL sink's tests start a throwaway server (initdb + pg_ctl):
# install Debian's PostgreSQL when it is missing (as root, or with sudo).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql >/dev/null
fi

# The status page's browser test drives Debian's headless Chromium through
# chromedriver, and the alert rules are checked with promtool (Debian's
# prometheus package): install what is missing. Outside CI those tests
# skip, loudly, without them; with CI set they fail.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo test --workspace --locked
# The embedding example must keep working as documented.
cargo run --quiet --locked --example custom_listener >/dev/null
echo "scripts/test.sh: all tests passed"
