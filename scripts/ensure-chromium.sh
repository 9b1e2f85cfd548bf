#!/usr/bin/env bash
# Makes sure Debian's chromium is installed: the end-to-end tests and the ingest benchmark drive it, and its
# SwiftShader is the Node `webgpu` package's software adapter on a machine without a GPU. Installs it as root
# (apt-get); otherwise names the command to run. CHROMIUM_PATH, when set, names a Chromium to use instead.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] && exit 0
  echo "CHROMIUM_PATH is set to '$CHROMIUM_PATH', which is not an executable file" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (Debian package) ..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null 2>&1 && exit 0
  echo "apt-get installed no 'chromium' command; install Debian's chromium package by hand" >&2
  exit 1
fi
echo "chromium is missing: run 'sudo apt-get install chromium' (Debian; other systems: install Chromium and set CHROMIUM_PATH) and try again" >&2
exit 1
