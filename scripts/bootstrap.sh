#!/usr/bin/env bash
# Creates .venv from uv.lock: the project (editable, so platform/ and stub/ edits are live) and
# its dev tools, go-task included, at exactly the locked versions. Runs when .venv is missing or
# pyproject.toml or uv.lock changed since the last install; safe to run again: it does nothing then.
# It never re-resolves: a uv.lock that no longer matches pyproject.toml is an error (./task lock).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt uv.lock ]; then
  exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
scripts/uv.sh --version >/dev/null
# When they agree, checking uv.lock against pyproject.toml reads no index (works offline).
if ! check="$(scripts/uv.sh lock --check 2>&1)"; then
  printf '%s\n' "$check" | grep -v -e '^hint:' -e '^Resolved' -e '^$' >&2 || true
  echo "bootstrap: uv.lock does not match pyproject.toml (its dependencies changed since the" >&2
  echo "bootstrap: last lock). Run ./task lock (or scripts/uv.sh lock) and commit uv.lock." >&2
  exit 1
fi
echo "bootstrap: installing the locked dependencies into .venv" >&2
# --frozen: install uv.lock as it is (just checked); exact: what the lock does not name goes.
scripts/uv.sh sync --frozen --extra dev --python "$PYTHON" --quiet
touch "$stamp"
