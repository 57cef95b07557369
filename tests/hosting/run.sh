#!/usr/bin/env bash
# Real apps hosted by `covet run` (tests/hosting): creates or refreshes build/hosting-venv from the pinned
# tests/hosting/requirements.txt (pip runs only when that file changed; the first install takes about a minute),
# links into it the covet package of $PYTHON (default .venv/bin/python: in the test command, the wheel just
# installed from this tree; in a worktree, bindings/python/covet with its _native .so), then runs every app under
# its reference server (uvicorn, gunicorn, hypercorn) and under covet. Extra arguments go to pytest (-k covet, -x).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
[[ $PYTHON == /* ]] || PYTHON=$PWD/$PYTHON
VENV=$PWD/build/hosting-venv
REQS=tests/hosting/requirements.txt
if [[ ! -x $VENV/bin/python ]] || ! cmp -s "$REQS" "$VENV/requirements.installed"; then
    echo "== hosting: installing the pinned frameworks into $VENV"
    "$PYTHON" -m venv "$VENV"  # the same interpreter as $PYTHON: covet's compiled engine is built for it
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$VENV/requirements.installed"
fi
# covet under test, and nothing else of $PYTHON's environment: a directory holding only a link to its package,
# named by a .pth in the venv (no copy, no build; re-pointed on every run)
# (a directory of links to the package's entries, plus the compiled engine where an editable install keeps it
# outside the package, in its build tree)
read -r covet_dir native < <("$PYTHON" -c 'import os, covet, covet._native as n; print(os.path.dirname(covet.__file__), n.__file__)')
rm -rf build/hosting-covet && mkdir -p build/hosting-covet/covet
ln -s "$covet_dir"/* build/hosting-covet/covet/
[[ -e build/hosting-covet/covet/$(basename "$native") ]] || ln -s "$native" build/hosting-covet/covet/
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/build/hosting-covet" > "$site/covet-under-test.pth"
cd tests/hosting
HOSTING_REQUIRE=1 exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -rfEsxX "$@" .
