#!/usr/bin/env bash
# Set everything up, then run the whole test suite (unit tests on tiny models, plus a few real-model tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
