"""The compiled engine (``covet._native``, typed by covet/_native.pyi) and the pure-Python stand-in
(tests/python/fake_native.py) both satisfy `covet.server.engine.Engine` and `EngineModule`: checked by
``mypy --strict`` (scripts/lint-python.sh), never run."""

from __future__ import annotations

import fake_native

from covet import _native
from covet.server.engine import Engine, EngineModule, Responder


def compiled(server: _native.NativeServer, responder: _native.NativeResponder) -> tuple[Engine, Responder]:
    return server, responder


def stand_in(server: fake_native.NativeServer, responder: fake_native.NativeResponder) -> tuple[Engine, Responder]:
    return server, responder


modules: list[EngineModule] = [_native, fake_native]
