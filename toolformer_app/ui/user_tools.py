"""The user's own tools in the app: the ``*.py`` files in ``<data dir>/tools/``, loaded when the app is built.

Loading a tool file runs its code, so the app loads them from the data dir only: never from an upload, never from
a path typed in the browser. A broken file is skipped, and the Annotate and Chat tabs show its one-line error
(file and line). The tools then appear beside the built-in five in both tabs.
"""

from __future__ import annotations

import sys

from toolformer_app import config
from toolformer_app.tools import TOOL_NAMES, tool_names
from toolformer_app.ui import render

# Colours for the user's tools (the built-in five have theirs in render.TOOL_COLORS).
_PALETTE = ("#0d9488", "#c026d3", "#65a30d", "#ea580c", "#4f46e5", "#be123c")

_loaded: list[str] = []
_errors: list[str] = []


def load() -> tuple[list[str], list[str]]:
    """Register the data dir's tools: (names, one-line errors). Called once per ``build_demo``."""
    from toolformer_app.tools.loader import load_data_dir_tools

    names, errors = load_data_dir_tools()
    prefixes = {str(config.data_dir()) + "/", str(config.data_dir().resolve()) + "/"}
    for prefix in prefixes:
        errors = [e.replace(prefix, "") for e in errors]  # "tools/broken.py:3: ..." reads better than a long path
    _loaded[:], _errors[:] = names, errors
    for n, name in enumerate(names):
        render.TOOL_COLORS.setdefault(name, _PALETTE[n % len(_PALETTE)])
    for e in errors:
        print(f"warning: tool file not loaded: {e}", file=sys.stderr)
    return names, errors


def choices() -> list[str]:
    """Tool names for the checkbox groups: the built-in five, then the user's."""
    return list(tool_names())


def known(names: list[str] | None) -> list[str]:
    """``names`` less anything that is not a registered tool (a stale browser value, a typo)."""
    valid = set(tool_names())
    return [n for n in (names or []) if n in valid]


def notice() -> str:
    """One Markdown line per fact: the user's tools that loaded, and each file that did not."""
    lines = []
    if _loaded:
        lines.append(f"Your tools from `tools/` in the data dir: {', '.join(_loaded)}.")  # never the server path
    lines += [f"⚠️ Tool file not loaded: `{e}`" for e in _errors]
    return "  \n".join(lines)


__all__ = ["TOOL_NAMES", "choices", "known", "load", "notice"]
