#!/usr/bin/env bash
# Quick start 1: set up and start the app (http://localhost:8501).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
