#!/usr/bin/env bash
# One command: install, then run the demo (server + PBX simulator + sample CRM + simulated people).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/ctiserver demo "$@"
