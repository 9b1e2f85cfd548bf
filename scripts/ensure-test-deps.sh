#!/usr/bin/env bash
# Installs what the tests need and the npm registry does not provide: Debian's chromium (SwiftShader WebGPU for
# both Playwright and the Node `webgpu` package) and the pinned Python oracle stack in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
bash scripts/ensure-chromium.sh
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import torch, transformers, safetensors, tokenizers, accelerate, pytest" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --retries 0 -q -r oracle/requirements.txt 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import torch, transformers, safetensors, tokenizers, accelerate, pytest"
fi
