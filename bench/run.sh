#!/usr/bin/env bash
# One command for the whole benchmark: `bench/run.sh [--quick] [--only …] [--targets …]`.
# Raises the open-files limit first (the capacity scenario holds 10k streams; every child
# process inherits the limit), then hands over to the Node orchestrator, which kills every
# process it started when it exits.
set -euo pipefail
cd "$(dirname "$0")"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ ! -d node_modules ]; then
  echo "bench: installing the bench package (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
exec node src/run.mjs "$@"
