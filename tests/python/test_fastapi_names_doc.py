"""docs/python.md's "FastAPI names" table is what scripts/fastapi_names.py renders from the checked-in list of
FastAPI's names (tests/differential/fastapi_names.json) and the covet package as it is now."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_names", ROOT / "scripts" / "fastapi_names.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fastapi_names", module)
    spec.loader.exec_module(module)
    return module


def test_the_table_in_docs_python_md_is_current() -> None:
    script = _script()
    doc = script.DOC.read_text(encoding="utf-8")
    expected = script.updated_doc(doc, script.render_table(json.loads(script.NAMES_JSON.read_text())))
    assert doc == expected, "docs/python.md's FastAPI names table is stale: run .venv/bin/python " \
                            "scripts/fastapi_names.py and commit docs/python.md"


def test_every_name_has_a_status_and_every_missing_one_a_reason() -> None:
    script = _script()
    names = json.loads(script.NAMES_JSON.read_text())
    assert "FastAPI" in names["modules"]["fastapi"] and "HTTPBasic" in names["modules"]["fastapi.security"]
    rows = script.rows(names)
    assert {status for _, _, status, _ in rows} <= {"supported", "differs", "not supported"}
    assert all(why for _, _, status, why in rows if status != "supported")
    by_name = {name: (path, status) for name, path, status, _ in rows}
    assert by_name["`fastapi.FastAPI`"] == ("`covet.CovetPy`", "differs")
    assert by_name["`fastapi.encoders.jsonable_encoder`"] == ("`covet.encoders.jsonable_encoder`", "supported")


def test_the_script_sees_names_it_cannot_import() -> None:
    script = _script()
    assert "jsonable_encoder" in script._defined_names("covet.encoders")
    assert script._public_names("from x import A as A\nfrom y import B\nT = TypeVar('T')\nC = 1\n_D = 2\n"
                                "def f(): pass\n") == ["A", "C", "f"]
