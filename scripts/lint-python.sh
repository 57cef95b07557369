#!/usr/bin/env bash
# Lints and type-checks the covet package (bindings/python/covet). Uses .venv's pinned tools (requirements-dev.txt;
# scripts/setup.sh installs them). Steps:
#   ruff          rules: pyproject.toml [tool.ruff] (fix what it can fix itself with: .venv/bin/ruff check --fix)
#   mypy --strict the package ([tool.mypy]), then tests/python/typing_check: a user's app (typed decorator options)
#                 and the two engines (covet._native and tests/python/fake_native.py) against covet.server.engine
#   lint-imports  the package's layers ([tool.importlinter]); tests/python/test_import_graph.py checks for cycles
#   stubtest      covet/_native.pyi against the compiled module as installed in the environment (build it first:
#                 pip install -e .); allowlist: bindings/python/stubtest-allowlist.txt
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
"$py" -m ruff check
"$py" -m mypy --strict
MYPYPATH=tests/python "$py" -m mypy --strict tests/python/typing_check
PYTHONPATH=bindings/python "$py" -c 'from importlinter.cli import lint_imports_command as c; c(["--no-cache"])'
if ! "$py" -c 'import covet._native' 2>/dev/null; then
    echo "lint-python: covet._native is not importable from $py: build it (pip install -e .) for stubtest" >&2
    exit 1
fi
"$py" -m mypy.stubtest covet._native --mypy-config-file pyproject.toml \
    --allowlist bindings/python/stubtest-allowlist.txt
