#!/usr/bin/env bash
# Second README command: set everything up, then run the test suite (fast tests; add -m slow
# for the long ones). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export MDPT_DATA="${MDPT_DATA:-$ROOT/.pytest_cache/mdpt_data}"
exec python -m pytest -m "not slow" "$@"
