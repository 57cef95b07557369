"""The ``covet`` command's entry point (``[project.scripts] covet = "covet.cli:main"``); it lives in
`covet.server.cli`."""

from __future__ import annotations

from .server.cli import main

__all__ = ["main"]
