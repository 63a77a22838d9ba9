#!/usr/bin/env bash
# Runs every test of sio-gateway: the Rust unit and integration tests, the black-box client
# tests (node's test runner + socket.io-client) against the release binary, and the benchmark
# harness's smoke mode.
# Installs the client tests' npm dependencies itself. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
command -v node >/dev/null || { echo "node not found: install Node.js 20 or newer (Debian: apt-get install nodejs npm)" >&2; exit 1; }

echo "== cargo test"
cargo test --all-targets

echo "== cargo build --release"
cargo build --release --bin sio-gateway

echo "== example clients: Python virtual environment, Rust client build"
command -v python3 >/dev/null || { echo "python3 not found: install Python 3.9+ (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
[ -x examples/python/.venv/bin/python ] || python3 -m venv examples/python/.venv
examples/python/.venv/bin/pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
cargo build --quiet --manifest-path examples/rust-client/Cargo.toml

# The client package (clients/js, sio-gateway-client): its own type check, then `npm pack`
# into clients/js/pack/. The client tests install that tarball (client-package-fixture.mjs), and
# the browser demo is bundled against it; examples/browser links the folder for `npm run build`.
echo "== client package: npm ci, type check, npm pack (clients/js/pack)"
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check \
  && rm -rf pack && mkdir pack && npm pack --silent --pack-destination pack >/dev/null && ls pack/sio-gateway-client-*.tgz)

echo "== npm dependencies (client tests and examples), browser demo build"
for dir in client-tests examples/node examples/browser; do
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
(cd examples/browser && npm run --silent build)

# The browser test drives Debian's Chromium (no browser download). Install it when missing
# and we may (root with apt); otherwise the test fails and names the package.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing Debian's chromium for the browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "== client tests (node --test, socket.io-client)"
(cd client-tests && SIO_GATEWAY_BIN="$(pwd)/../target/release/sio-gateway" npm test)

# The benchmark harness in smoke mode (bench/README.md): small sizes, every target, unpinned;
# fails only when a run lost or refused something, never because of speed.
echo "== benchmark harness smoke (load generator, peers, orchestrator)"
cargo build --quiet --release --manifest-path bench/loadgen/Cargo.toml
cargo build --quiet --release --manifest-path bench/peers/bare/Cargo.toml
(cd bench/peers/node && npm ci --no-audit --no-fund --loglevel=error)
node bench/run.mjs --smoke --no-build --out "${TMPDIR:-/tmp}/sio-gateway-bench-smoke.json"
