#!/usr/bin/env bash
# Creates .venv with the project and its dev tools (go-task included) when missing or when
# pyproject.toml changed since the last install. Safe to run again: it does nothing then.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
echo "bootstrap: installing the project into .venv (first run takes a minute)" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
.venv/bin/python -m pip install --quiet -e '.[dev]' 2> >(grep -v 'is ignored: it is neither' >&2)
touch "$stamp"
