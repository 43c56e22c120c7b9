#!/usr/bin/env bash
# Creates ./.venv (once) and installs mdpt with its pinned dependencies (again only when
# pyproject.toml changed). Sourced by scripts/quickstart.sh and scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${MDPT_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[mdpt setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.mdpt_setup_stamp"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[mdpt setup] installing mdpt and its pinned dependencies (torch==2.13.0 CPU, ray[tune]==2.60.0, ...)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  # torch first and alone: the pin resolves to the CPU build where one is available locally.
  # (grep drops one harmless warning per package that some pip configurations print)
  quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
  quiet "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  quiet "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
export RAY_USAGE_STATS_ENABLED=0
