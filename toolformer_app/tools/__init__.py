"""The five tools of the paper, the user's own tools (``register_tool``, ``tools.loader``), and a registry by name."""

from __future__ import annotations

from collections.abc import Callable

from toolformer_app.tools.base import Thresholds, Tool, ToolError, ToolResult

__all__ = ["Thresholds", "Tool", "ToolError", "ToolResult", "TOOL_NAMES", "get_tool", "default_tools",
           "register_tool", "tool_names", "user_tool_names"]

TOOL_NAMES = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")

# The user's own tools, by lower-case name: a factory that takes get_tool's keyword options (most ignore them).
_USER_TOOLS: dict[str, tuple[str, Callable[..., Tool]]] = {}


def register_tool(tool: Tool | Callable[..., Tool], name: str | None = None) -> str:
    """Make a tool of the user's known to ``get_tool`` (and so to generate, chat, eval and the app) by name.

    ``tool`` is a ``Tool`` instance or a factory returning one. A name of the built-in five is refused; registering
    the same name again replaces the earlier tool (a reloaded file).
    """
    factory = (lambda **_: tool) if isinstance(tool, Tool) else tool
    name = name or (tool.name if isinstance(tool, Tool) else factory().name)
    if name.strip().lower() in {n.lower() for n in TOOL_NAMES}:
        raise ValueError(f"tool name {name!r} is a built-in tool's; give your tool another name")
    _USER_TOOLS[name.strip().lower()] = (name, factory)
    return name


def user_tool_names() -> tuple[str, ...]:
    """Names of the registered user tools, in registration order."""
    return tuple(name for name, _ in _USER_TOOLS.values())


def tool_names() -> tuple[str, ...]:
    """The built-in five, then the user's registered tools."""
    return TOOL_NAMES + user_tool_names()


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
    if key in _USER_TOOLS:
        return _USER_TOOLS[key][1](**kwargs)
    raise KeyError(f"unknown tool {name!r}; choose from {', '.join(tool_names())}"
                   + ("" if _USER_TOOLS else " (or load your own with --tools-from FILE)"))


def default_tools(names: str | list[str] | tuple[str, ...] = TOOL_NAMES) -> dict[str, Tool]:
    """A registry {name: tool} for ``invoke_tools`` and inference."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    tools = [get_tool(n) for n in names]
    return {t.name: t for t in tools}
