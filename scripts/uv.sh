#!/usr/bin/env bash
# Runs the uv that pyproject.toml pins ([tool.uv] required-version), installing it from PyPI
# into .tools/uv-<version>/ on first use. It lives outside .venv because `uv sync` removes from
# .venv whatever uv.lock does not name. Usage: scripts/uv.sh lock --upgrade, scripts/uv.sh tree, ...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

version="$(sed -n 's/^required-version *= *"==\([0-9][0-9.]*\)".*/\1/p' "$root/pyproject.toml")"
if [ -z "$version" ]; then
  echo "uv.sh: pyproject.toml has no [tool.uv] required-version = \"==X.Y.Z\"" >&2
  exit 1
fi
tools="$root/.tools/uv-$version"
uv="$tools/bin/uv"
if ! "$uv" --version >/dev/null 2>&1; then
  echo "uv.sh: installing uv $version into .tools/" >&2
  rm -rf "$tools"
  "$PYTHON" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$version" \
    2> >(grep -v 'is ignored: it is neither' >&2)
fi
# The machine's Python only: uv never downloads an interpreter of its own here.
export UV_PYTHON_DOWNLOADS=never
exec "$uv" "$@"
