# Sourced by the benchmark scripts: caches, a release build of larder ($LARDER), a work
# directory ($work) removed on exit, and $pids, the processes to stop on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE=${LARDER_CACHE:-$HOME/.cache/larder}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
VENV=${LARDER_FEAST_VENV:-$CACHE/feast-venv}
cargo build --release -q -p larder-server
LARDER=$CARGO_TARGET_DIR/release/larder

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
