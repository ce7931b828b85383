#!/usr/bin/env bash
# Set everything up, then run the demo on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lifelong demo "$@"
