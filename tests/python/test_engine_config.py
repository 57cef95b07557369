"""The engine's settings have one source: covet::net::ServerConfig, bound as ``covet._native.ServerConfig``. The
`NativeServer` keywords default to it and set its fields; `covet run`'s options, their ``--help`` text,
docs/operations.md and the pure-Python stand-in take their defaults from it; whether a build has a setting is
asked of it (no parsing of docstrings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fake_native
import pytest

from covet.server.options import ENGINE_OPTIONS, UsageError, check_engine_supports, engine_has
from covet.server.supervisor import engine_adopts_sockets

native = pytest.importorskip("covet._native")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def field(config: Any, path: str) -> Any:
    for name in path.split("."):
        config = getattr(config, name)
    return config


def test_a_default_config_is_the_engines_defaults() -> None:
    c = native.ServerConfig()
    assert (c.host, c.port, c.threads, c.backend, c.listen_backlog, c.inherited_listener) == \
        ("0.0.0.0", 8000, 0, "auto", 4096, -1)
    assert c.limits.max_body_bytes == 1024 * 1024 and c.limits.stream_body_threshold == 64 * 1024
    assert c.timeouts.header == timedelta(seconds=10) and c.timeouts.body_deadline == timedelta(0)
    assert c.http2 and c.http2_limits.max_concurrent_streams == 100


def test_config_fields_are_read_write_and_nested_structs_are_shared() -> None:
    c = native.ServerConfig()
    c.limits.max_body_bytes = 5
    c.timeouts.keep_alive = timedelta(milliseconds=1500)
    c.backend = "asio"
    assert c.limits.max_body_bytes == 5 and c.timeouts.keep_alive == timedelta(milliseconds=1500)
    assert c.backend == "asio"
    assert native.ServerConfig().limits.max_body_bytes == 1024 * 1024  # a new one has the defaults again
    with pytest.raises(ValueError, match="backend must be 'auto', 'uring' or 'asio'"):
        c.backend = "kqueue"


def test_native_server_keywords_default_to_the_config() -> None:
    running = native.NativeServer(port=0).config
    defaults = native.ServerConfig()
    for o in ENGINE_OPTIONS:
        assert field(running, o.field) == field(defaults, o.field), o.kwarg


@pytest.mark.parametrize("option", ENGINE_OPTIONS, ids=[o.kwarg for o in ENGINE_OPTIONS])
def test_each_option_sets_its_config_field(option: Any) -> None:
    value = option.default(native) + 7
    config = native.NativeServer(port=0, **{option.kwarg: value}).config
    got = field(config, option.field)
    assert (got // timedelta(milliseconds=1) if isinstance(got, timedelta) else got) == value


def test_the_stand_in_has_the_same_defaults() -> None:
    for o in ENGINE_OPTIONS:
        assert o.default(fake_native) == o.default(native), o.kwarg


def test_options_describe_the_defaults_as_docs_operations_lists_them() -> None:
    row = re.compile(r"^\| `(--[a-z0-9-]+)` \| ([^|]+?) \|[^|]*\| `(\w+)` \| `([\w.]+)` \|$", re.M)
    rows = {m.group(1): (m.group(2), m.group(3), m.group(4)) for m in row.finditer(DOCS.read_text())}
    for o in ENGINE_OPTIONS:
        assert rows.get(o.flag) == (o.describe(o.default(native)), o.kwarg, o.field), o.flag


def test_help_shows_the_engines_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "covet", "run", "--help"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for o in ENGINE_OPTIONS:
        assert f"(default {o.describe(o.default(native))}; env {o.env})" in text, o.flag


def test_capabilities_are_asked_of_the_config() -> None:
    assert engine_adopts_sockets(native)
    assert all(engine_has(native, o.field) for o in ENGINE_OPTIONS)
    check_engine_supports({o.kwarg: 1 for o in ENGINE_OPTIONS}, native)

    class OldLimits:  # a build from before --limit-max-stream-body
        max_body_bytes = 1 << 20

    old = SimpleNamespace(ServerConfig=lambda: SimpleNamespace(limits=OldLimits()))
    assert not engine_adopts_sockets(old)  # type: ignore[arg-type]
    check_engine_supports({"max_body_bytes": 5}, old)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"--limit-max-stream-body: this build of the engine .* has no "
                                         r"'limits.max_stream_body_bytes' setting; rebuild it"):
        check_engine_supports({"max_stream_body_bytes": 5}, old)  # type: ignore[arg-type]
