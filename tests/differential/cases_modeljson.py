"""Differential cases for the native response-model writer (covet/_model_json.py): apps/modeljson_app.py."""

from __future__ import annotations

from cases import Case, case

_A = "modeljson"

CASES: list[Case] = [
    case(f"{_A}/recursive-aliases", "GET", "/tree"),
    case(f"{_A}/nested-exclude-all", "GET", "/tree-filtered"),
    case(f"{_A}/exclude-unset-nested", "GET", "/tree-unset"),
    case(f"{_A}/exclude-defaults-none", "GET", "/tree-defaults"),
    case(f"{_A}/subclass-list-unset-exclude", "GET", "/items"),
    case(f"{_A}/list-include-all", "GET", "/items-include"),
    case(f"{_A}/dicts-validated", "GET", "/items-dicts"),
    case(f"{_A}/invalid-500", "GET", "/items-invalid"),
    case(f"{_A}/floats-ints-strings", "GET", "/numbers"),
    case(f"{_A}/fallback-datetime-bigint", "GET", "/numbers-fallback"),
]
