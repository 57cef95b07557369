#!/usr/bin/env bash
# Lints and type-checks the covet package (bindings/python/covet): ruff (rules: pyproject.toml [tool.ruff]) and
# mypy --strict ([tool.mypy]). Uses .venv's pinned tools (requirements-dev.txt; scripts/setup.sh installs them).
# Fix what ruff can fix itself with: .venv/bin/ruff check --fix
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
"$py" -m ruff check
"$py" -m mypy --strict
