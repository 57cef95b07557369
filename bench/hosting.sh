#!/usr/bin/env bash
# The hosting comparison (issue 15): the same FastAPI app under uvicorn, Hypercorn, Granian ASGI, CovetPy hosting it
# (covet run --interface asgi3) and CovetPy's shim (--compat fastapi); the same Flask app under gunicorn, Granian WSGI
# and CovetPy (--interface wsgi). bench/hosting.py lists the servers; options as python -m bench (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m bench --hosting "$@"
