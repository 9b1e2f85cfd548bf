#!/usr/bin/env bash
# Runs every test layer: typecheck, Vitest (Node + WGSL on SwiftShader), Playwright end-to-end in Debian's
# Chromium, and the Python oracle tests. Installs what is missing first (Chromium from Debian, the pinned Python
# stack into .venv), so one command works on a fresh machine. Ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-deps.sh || { echo "could not install test dependencies"; exit 1; }
rm -rf .test-results && mkdir -p .test-results   # a crashed layer must not leave last run's results behind
status=0

echo "== typecheck"
npx tsc --noEmit -p tsconfig.json || status=1

echo "== unit (vitest)"
npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json || status=1

echo "== end-to-end (chromium)"
node e2e/run.mjs --json .test-results/e2e.json || status=1

echo "== oracle (python)"
# The oracle checks the checkpoints the page exported in the e2e run above: they must be there.
MOE_PRUNE_REQUIRE_E2E_EXPORTS=1 bash oracle/run.sh --junitxml=.test-results/oracle.xml || status=1

node scripts/summarize-tests.mjs .test-results || status=1
exit $status
