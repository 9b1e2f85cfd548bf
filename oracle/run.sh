#!/usr/bin/env bash
# Python oracle tests (transformers 5.18 / safetensors 0.8 as the reference). Creates .venv at the repo root from
# oracle/requirements.txt when it is missing or incomplete; extra arguments go to pytest (e.g. --junitxml=...).
# The fixtures are committed: regenerate them by hand with oracle/make_fixtures.py and make_safetensors_cases.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ] || ! "$PY" -c "import torch, transformers, safetensors, tokenizers, accelerate, pytest" 2>/dev/null; then
  [ -x "$PY" ] || python3 -m venv .venv
  .venv/bin/pip install --retries 0 -q -r oracle/requirements.txt
fi
export TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
# Paths given first select tests (bash oracle/run.sh oracle/tests/test_x.py); otherwise the whole folder runs.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then exec "$PY" -m pytest -q -p no:cacheprovider "$@"; fi
exec "$PY" -m pytest oracle/tests -q -p no:cacheprovider "$@"
