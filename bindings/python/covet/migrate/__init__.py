"""``covet migrate PATH... [--check] [--diff]``: rewrites a FastAPI/Starlette code base's imports and the few
differing calls to CovetPy's, on a concrete syntax tree (libcst: formatting and comments survive).

Per file it prints what changed and, as ``path:line: ...``, what it could not map (names covet lacks, keyword
arguments covet's callables do not take). Exit status: 0 when everything mapped (or there was nothing to do), 1
when something could not be mapped or a file could not be parsed, and with ``--check`` also when a file would be
rewritten; 2 for a usage error (no such path, libcst missing). ``--check`` and ``--diff`` write nothing; ``--diff``
prints a unified diff of each rewrite. Directories are walked for ``*.py`` files, skipping virtual environments,
build directories and version-control metadata. docs/migration.md tells the three ways onto CovetPy.

libcst is an optional dependency: ``pip install 'covetpy[migrate]'`` (or ``pip install libcst``).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional, TextIO

__all__ = ["INSTALL_HINT", "MigrateError", "iter_python_files", "migrate"]

INSTALL_HINT = "pip install 'covetpy[migrate]' (or pip install libcst)"

#: Directory names never entered (virtual environments are also recognised by their pyvenv.cfg).
SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", "__pycache__", "build", "dist", "node_modules",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs", "site-packages", "__pypackages__",
})


class MigrateError(Exception):
    """A usage error: no such path, or libcst is missing."""


def _skipped(directory: Path) -> bool:
    name = directory.name
    return name in SKIPPED_DIRS or name.endswith(".egg-info") or (directory / "pyvenv.cfg").exists()


def iter_python_files(path: Path) -> Iterator[Path]:
    """`path` itself when it is a file, else the ``*.py`` files under it, sorted, skipping SKIPPED_DIRS."""
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not _skipped(Path(root) / d))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(root) / name


def _require_libcst() -> None:
    if importlib.util.find_spec("libcst") is None:  # optional dependency (the `migrate` extra)
        raise MigrateError(f"libcst is not installed: {INSTALL_HINT}")


def _diff(path: Path, old: bytes, new: bytes) -> str:
    a = old.decode("utf-8", "replace").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").splitlines(keepends=True)
    old_name, new_name = (str(path), str(path)) if path.is_absolute() else (f"a/{path}", f"b/{path}")
    lines = difflib.unified_diff(a, b, fromfile=old_name, tofile=new_name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def migrate(paths: Sequence[str], *, check: bool = False, diff: bool = False, out: Optional[TextIO] = None) -> int:
    """Runs ``covet migrate`` on `paths`; returns the exit status. Raises MigrateError for a usage error."""
    stream = sys.stdout if out is None else out
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise MigrateError(f"no such file or directory: {', '.join(missing)}")
    _require_libcst()
    from libcst import ParserSyntaxError

    from .transform import rewrite_source

    files = rewritten = unchanged = failed = unmapped = 0
    for top in paths:
        for path in iter_python_files(Path(top)):
            files += 1
            try:
                old = path.read_bytes()
            except OSError as e:
                print(f"{path}: cannot read: {e.strerror}", file=stream)
                failed += 1
                continue
            try:
                result = rewrite_source(old)
            except ParserSyntaxError as e:
                print(f"{path}:{e.raw_line}: cannot parse, left as it is: {e.message}", file=stream)
                failed += 1
                continue
            changed = result.source != old
            if changed:
                rewritten += 1
                verb = "would rewrite" if check or diff else "rewritten"
                print(f"{path}: {verb}", file=stream)
                for note in result.changes:
                    print(f"  {f'line {note.line}: ' if note.line else ''}{note.text}", file=stream)
                if diff:
                    stream.write(_diff(path, old, result.source))
                if not (check or diff):
                    path.write_bytes(result.source)
            elif not result.problems:
                unchanged += 1
            for note in result.problems:
                print(f"{path}:{note.line}: {note.text}", file=stream)
            unmapped += len(result.problems)
    summary = [f"{rewritten} {'to rewrite' if check or diff else 'rewritten'}", f"{unchanged} unchanged"]
    if unmapped:
        summary.append(f"{unmapped} not mapped (path:line above; left as they were)")
    if failed:
        summary.append(f"{failed} not parsed")
    print(f"covet migrate: {files} file{'' if files == 1 else 's'} checked: {', '.join(summary)}", file=stream)
    if unmapped:
        print("covet migrate: CovetPy's alternatives to the FastAPI names it lacks: docs/python.md, 'FastAPI names'",
              file=stream)
    if failed or unmapped or (check and rewritten):
        return 1
    return 0
