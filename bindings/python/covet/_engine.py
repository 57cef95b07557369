"""Where the native engine comes from: ``covet._native`` (the compiled extension), or a stand-in.

Tests (and tools) may install a substitute with the same interface via `use_native`; everything in the
package reaches the engine through `native_module()`.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["native_module", "use_native"]

_override: Optional[Any] = None


def native_module() -> Any:
    """The engine module: the one given to `use_native`, else ``covet._native``."""
    if _override is not None:
        return _override
    try:
        from . import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ImportError(
            "covet's native engine (covet._native) is not built; install the package with "
            "`pip install .` from the source tree"
        ) from exc
    return _native


def use_native(module: Optional[Any]) -> Optional[Any]:
    """Use `module` as the engine from now on (None: back to ``covet._native``); returns the previous one."""
    global _override
    previous, _override = _override, module
    return previous

