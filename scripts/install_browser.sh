#!/usr/bin/env bash
# Headless Chromium and its driver from Debian's packages (chromium, chromium-driver) for
# tests/test_browser.py. Idempotent: does nothing when both are there. Never fails the build:
# where they cannot be installed the browser test skips and says why.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; the browser test will be skipped" >&2
  exit 0
fi
sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "install_browser: not root and no sudo; the browser test will be skipped" >&2
    exit 0
  fi
fi
log="$(mktemp)"
echo "install_browser: apt-get install chromium chromium-driver" >&2
if $sudo apt-get update -qq >"$log" 2>&1 &&
   DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >>"$log" 2>&1; then
  echo "install_browser: $(chromium --version 2>/dev/null || echo chromium installed)" >&2
else
  echo "install_browser: could not install chromium (see below); the browser test will be skipped" >&2
  tail -n 5 "$log" >&2
fi
rm -f "$log"
exit 0
