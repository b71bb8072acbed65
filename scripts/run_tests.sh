#!/usr/bin/env bash
# Quick start 2: set up everything the tests need (Python deps, Debian's Chromium) and run them.
# Extra arguments go to pytest, e.g. scripts/run_tests.sh -k upload
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
pytest=(.venv/bin/python -m pytest)
# The suite runs in a private network namespace that has only loopback: the WebRTC browser test
# then negotiates over 127.0.0.1 alone and nothing can reach another host. Where namespaces are
# not allowed, it runs on the host network, which also works.
if unshare --net true 2>/dev/null; then
  exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}" "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}" "$@"
else
  exec "${pytest[@]}" "$@"
fi
