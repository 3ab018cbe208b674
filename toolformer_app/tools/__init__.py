"""The five tools of the paper, and a registry by name."""

from __future__ import annotations

from toolformer_app.tools.base import Thresholds, Tool, ToolError, ToolResult

__all__ = ["Thresholds", "Tool", "ToolError", "ToolResult", "TOOL_NAMES", "get_tool", "default_tools"]

TOOL_NAMES = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")


def get_tool(name: str, **kwargs) -> Tool:
    """A tool instance by its paper name (case-insensitive)."""
    key = name.strip().lower()
    if key == "calculator":
        from toolformer_app.tools.calculator import Calculator

        return Calculator(**kwargs)
    if key == "calendar":
        from toolformer_app.tools.calendar import Calendar

        return Calendar(**kwargs)
    if key == "wikisearch":
        from toolformer_app.tools.wikisearch import WikiSearch

        return WikiSearch(**kwargs)
    if key == "qa":
        from toolformer_app.tools.qa import QA

        return QA(**kwargs)
    if key == "mt":
        from toolformer_app.tools.mt import MT

        return MT(**kwargs)
    raise KeyError(f"unknown tool {name!r}; choose from {', '.join(TOOL_NAMES)}")


def default_tools(names: str | list[str] | tuple[str, ...] = TOOL_NAMES) -> dict[str, Tool]:
    """A registry {name: tool} for ``invoke_tools`` and inference."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    tools = [get_tool(n) for n in names]
    return {t.name: t for t in tools}
