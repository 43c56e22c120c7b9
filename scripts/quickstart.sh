#!/usr/bin/env bash
# First README command: set everything up, then run the main job on its embedded default
# (the quickstart sweep, ending in a report). Extra arguments go to `mdpt quickstart`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec mdpt quickstart "$@"
