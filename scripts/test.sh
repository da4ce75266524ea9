#!/usr/bin/env bash
# One command: install everything the tests need (Debian packages, venv, a throwaway PostgreSQL on
# loopback), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
if [ -z "${CTISERVER_TEST_PG_URL:-}" ]; then
  eval "$(./scripts/pg-test-server.sh --env)"
fi
# The house rules first: lint and types (benchmarks included: they must keep up with the code they measure).
.venv/bin/ruff check .
.venv/bin/mypy ctiserver acd crmstore ivr_flows pbxsim bench
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
