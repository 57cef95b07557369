"""Compare ``app.openapi()`` of FastAPI's own documented examples (its repository's ``docs_src``) under FastAPI and
under CovetPy — a wider net than the sample apps, run by hand (not part of the test command):

    python tests/differential/openapi_corpus.py /path/to/fastapi/docs_src \\
        --fastapi-python build/differential-venv/bin/python [--covet-python .venv/bin/python] [-v]

Each example runs unchanged: under CovetPy, a ``fastapi`` package made on the fly maps FastAPI's module paths to
covet's (``fastapi`` → ``covet`` with ``CovetPy as FastAPI``, ``fastapi.responses`` → ``covet.responses`` ...).
An example that does not load under CovetPy (a name or feature it lacks) is counted, with its error, not
compared. Prints: how many schemas are the same, differ, or could not be built on either side.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUNNER = r'''
import glob, json, os, runpy, signal, sys, warnings
warnings.simplefilter("ignore")
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "**", "*.py"), recursive=True)):
    if os.path.basename(path).startswith("test_") or "/sql_databases/" in path or "/settings/" in path:
        continue
    try:
        signal.alarm(20)
        app = runpy.run_path(path).get("app")
        if app is not None and hasattr(app, "openapi"):
            out[path] = app.openapi()
    except BaseException as exc:
        out[path] = {"ERROR": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        signal.alarm(0)
with open(sys.argv[2], "w") as f:
    json.dump(out, f, sort_keys=True, default=str)
'''

SHIM = {  # module path under fastapi -> its source under CovetPy
    "__init__.py": "from covet import *  # noqa: F403\nfrom covet import CovetPy as FastAPI  # noqa: F401\n",
    "responses.py": "from covet.responses import *  # noqa: F403\n",
    "params.py": "from covet.params import *  # noqa: F403\n",
    "exceptions.py": "from covet.exceptions import *  # noqa: F403\n",
    "encoders.py": "from covet.encoders import *  # noqa: F403\n",
    "requests.py": "from covet.requests import *  # noqa: F403\n",
    "datastructures.py": "from covet.datastructures import *  # noqa: F403\n",
    "openapi/__init__.py": "",
    "openapi/docs.py": "from covet.openapi.docs import *  # noqa: F403\n",
    "security/__init__.py": "from covet.security import *  # noqa: F403\n",
    "routing.py": "from covet.routing import *  # noqa: F403\n",
    "sse.py": "from covet.sse import *  # noqa: F403\n",
    "testclient.py": "from covet.testing import *  # noqa: F403\n",
    "background.py": "from covet.background import *  # noqa: F403\n",
    "openapi/utils.py": "from covet.openapi.utils import get_openapi  # noqa: F401\n",
}


def run(python: str, docs_src: Path, out: Path, shim: Path | None) -> dict[str, object]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}  # see conftest.py
    if shim is not None:
        extra = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []  # the examples' packages, both sides
        env["PYTHONPATH"] = os.pathsep.join([str(shim), str(ROOT / "bindings" / "python"), *extra])
    subprocess.run([os.path.abspath(python), "-c", RUNNER, str(docs_src), str(out)], env=env, cwd=docs_src, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, object] = json.loads(out.read_text())
    return result


def _same_default_title(schema: object) -> object:
    """CovetPy's default title ("CovetPy") counted the same as FastAPI's ("FastAPI"), as the differential test does."""
    info = schema.get("info") if isinstance(schema, dict) else None
    if isinstance(info, dict) and info.get("title") == "CovetPy":
        info["title"] = "FastAPI"
    return schema


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("docs_src", type=Path)
    parser.add_argument("--fastapi-python", default=str(ROOT / "build" / "differential-venv" / "bin" / "python"))
    parser.add_argument("--covet-python", default=sys.executable)
    parser.add_argument("-v", "--verbose", action="store_true", help="list CovetPy's load errors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shim = Path(tmp) / "shim"
        for name, source in SHIM.items():
            path = shim / "fastapi" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        reference = run(args.fastapi_python, args.docs_src.resolve(), Path(tmp) / "fastapi.json", None)
        covet = run(args.covet_python, args.docs_src.resolve(), Path(tmp) / "covet.json", shim)
    counts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    differ = []
    for path, schema in sorted(reference.items()):
        other = covet.get(path)
        if isinstance(schema, dict) and "ERROR" in schema:
            counts["not built under FastAPI"] += 1
        elif other is None:
            counts["no app under CovetPy"] += 1
        elif isinstance(other, dict) and "ERROR" in other:
            counts["does not load under CovetPy"] += 1
            errors[str(other["ERROR"])[:100]] += 1
        elif json.dumps(schema, sort_keys=True) == json.dumps(_same_default_title(other), sort_keys=True):
            counts["same schema"] += 1
        else:
            counts["different schema"] += 1
            differ.append(path)
    for what, n in counts.most_common():
        print(f"{n:5d}  {what}")
    for path in differ:
        print(f"differs: {path}")
    if args.verbose:
        for error, n in errors.most_common():
            print(f"{n:5d}  {error}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
