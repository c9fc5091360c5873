#!/usr/bin/env bash
# Runs every native fuzz target in the module for FUZZTIME each (default 60s), using the
# Makefile's discovery, so new targets join automatically.
# Usage: FUZZTIME=5m bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec make --no-print-directory fuzz FUZZTIME="${FUZZTIME:-60s}"
