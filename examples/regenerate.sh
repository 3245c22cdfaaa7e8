#!/usr/bin/env bash
# Regenerates examples/driver_demo (definitions, Parquet data, registry.db) with the real Feast
# SDK, so the example registry is exactly what Feast 0.67 writes. Needs the venv scripts/test makes.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${LARDER_FEAST_VENV:-${LARDER_CACHE:-$HOME/.cache/larder}/feast-venv}
rm -rf driver_demo
"$VENV/bin/python" ../oracle/make_repo.py driver_demo --project driver_demo --registry data/registry.db --seed 7
(cd driver_demo && PYTHONWARNINGS=ignore "$VENV/bin/feast" apply >/dev/null)
rm -f driver_demo/data/online.db
rm -rf driver_demo/__pycache__
