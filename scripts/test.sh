#!/usr/bin/env bash
# Set everything up, then run the whole test suite (unit tests on tiny models, plus a few real-model tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The dashboard test drives Debian's chromium headless (tests/test_dashboard.py). Install it when
# this machine allows (root and apt); otherwise that one test says why it skips.
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "==> installing chromium and chromium-driver with apt, for the dashboard test (once)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; } \
    >/dev/null 2>&1 || echo "==> could not install chromium; the dashboard test will skip"
fi
exec .venv/bin/python -m pytest "$@"
