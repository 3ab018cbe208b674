"""Bring your own tool: load a Python file that defines tools, and register them by name.

A tool file defines either or both of:

- one or more subclasses of ``toolformer_app.tools.Tool`` (its prompt, A.1 heuristic, executor and thresholds;
  see ``examples/tools/units.py``), each built with no arguments;
- the function form: a function ``TOOL`` (called with the call's input) and a teach ``PROMPT`` holding
  ``[input]``, with optional ``NAME`` (default: the function's name) and ``THRESHOLDS``.

Loading a file runs its code. The CLI loads only the files named with ``--tools-from``; the app loads only the
``*.py`` files in ``<data dir>/tools/``, never an upload or a path typed in the browser.

A file that fails (a syntax error, an exception while it runs, no tool in it, a bad name) raises
``ToolFileError`` whose message is one line naming the file and the line: ``units.py:12: NameError: ...``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from toolformer_app.tools import TOOL_NAMES, register_tool
from toolformer_app.tools.base import Thresholds, Tool

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # what the call format "[Name(input)]" can parse
TOOLS_SUBDIR = "tools"


class ToolFileError(ValueError):
    """A tool file that cannot be used; the message is one line: "FILE:LINE: what went wrong"."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line or 1}: {' '.join(str(message).split())}")


def _line_in(path: Path, exc: BaseException) -> int | None:
    """The last line of ``path`` in the exception's traceback (where the user's code failed)."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == path:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return line


def _definition_line(obj: Any) -> int | None:
    try:
        import inspect

        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return None


def _build(cls: type[Tool], path: Path) -> Tool:
    """An instance of the user's Tool subclass, with its class-level settings applied.

    A subclass written without ``@dataclass`` (``name = "Units"`` as a plain class attribute) would otherwise get
    the base dataclass's defaults ("Tool") from ``__init__``; the class's own values win here.
    """
    try:
        tool = cls()
    except (Exception, SystemExit) as exc:  # sys.exit() in the user's code is a broken file, not the end
        raise ToolFileError(path, _line_in(path, exc) or _definition_line(cls),
                            f"{cls.__name__}() failed: {type(exc).__name__}: {exc}") from None
    for f in dataclasses.fields(Tool):
        for klass in cls.__mro__:
            if klass is Tool:
                break
            if f.name in klass.__dict__ and not isinstance(klass.__dict__[f.name], (property, dataclasses.Field)):
                setattr(tool, f.name, klass.__dict__[f.name])
                break
    return tool


def _function_tool(module: Any, path: Path) -> Tool:
    from toolformer_app.tools.function import PLACEHOLDER, FunctionTool

    fn, prompt = module.TOOL, getattr(module, "PROMPT", None)
    line = _definition_line(fn) if callable(fn) else None
    if not callable(fn):
        raise ToolFileError(path, line, f"TOOL must be a function, not {type(fn).__name__}")
    if not isinstance(prompt, str) or PLACEHOLDER not in prompt.lower():
        raise ToolFileError(path, line, f"TOOL needs a PROMPT string holding {PLACEHOLDER} (the teach prompt)")
    thresholds = getattr(module, "THRESHOLDS", None) or Thresholds()
    if not isinstance(thresholds, Thresholds):
        raise ToolFileError(path, line, "THRESHOLDS must be a toolformer_app.tools.Thresholds")
    name = getattr(module, "NAME", None) or fn.__name__
    return FunctionTool(name=name, description=(fn.__doc__ or "").strip().split("\n")[0], fn=fn,
                        teach_prompt=prompt, thresholds=thresholds)


def _check(tool: Tool, path: Path, line: int | None) -> None:
    if not isinstance(tool.name, str) or not _NAME.match(tool.name):
        raise ToolFileError(path, line, f"tool name {tool.name!r} must be a Python identifier (it is written "
                                        f"as [{tool.name}(input)] in the text)")
    if tool.name.lower() in {n.lower() for n in TOOL_NAMES} or tool.name == "Tool":
        raise ToolFileError(path, line, f"tool name {tool.name!r} is taken: give the class a name = \"...\"")
    if type(tool).run is Tool.run:
        raise ToolFileError(path, line, f"{type(tool).__name__} does not implement run(self, input) -> ToolResult")


def load_tool_file(path: str | Path) -> list[Tool]:
    """Run the file and return the tools it defines (not yet registered). Raises ``ToolFileError``."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ToolFileError(path, None, "no such file")
    if path.suffix != ".py":
        raise ToolFileError(path, None, "a tool file is a Python file (.py)")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    module_name = f"toolformer_user_tools.{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ToolFileError(path, None, "cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # SyntaxError, ImportError, sys.exit(), anything the user's code raises
        sys.modules.pop(module_name, None)
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        if isinstance(exc, SystemExit):
            message = f"the file calls exit ({exc.code!r}) while it loads"
        raise ToolFileError(path, _line_in(path, exc), f"{type(exc).__name__}: {message}") from None

    tools: list[tuple[Tool, int | None]] = []
    for value in list(vars(module).values()):
        if (isinstance(value, type) and issubclass(value, Tool) and value is not Tool
                and value.__module__ == module_name and not getattr(value, "__abstractmethods__", None)
                and not value.__name__.startswith("_")):
            tools.append((_build(value, path), _definition_line(value)))
    if hasattr(module, "TOOL"):
        tool = _function_tool(module, path)
        tools.append((tool, _definition_line(module.TOOL)))
    if not tools:
        raise ToolFileError(path, None, "defines no Tool subclass, and no TOOL function with a PROMPT")
    seen: set[str] = set()
    for tool, line in tools:
        _check(tool, path, line)
        if tool.name.lower() in seen:
            raise ToolFileError(path, line, f"two tools are named {tool.name!r}")
        seen.add(tool.name.lower())
    return [tool for tool, _ in tools]


def register_tool_files(paths: Iterable[str | Path]) -> list[str]:
    """Load every file and register its tools; the names registered. Raises ``ToolFileError`` on the first bad file."""
    names: list[str] = []
    for path in paths:
        for tool in load_tool_file(path):
            names.append(register_tool(tool))
    return names


def data_dir_tool_files(data_dir: str | Path | None = None) -> list[Path]:
    """The ``*.py`` files in ``<data dir>/tools/`` (the only place the app loads tools from), sorted."""
    from toolformer_app import config

    folder = Path(data_dir) if data_dir is not None else config.data_dir()
    folder = folder / TOOLS_SUBDIR
    return sorted(p for p in folder.glob("*.py") if p.is_file() and not p.name.startswith((".", "_")))


def load_data_dir_tools(data_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Register the tools of every file in ``<data dir>/tools/``: (names, one-line errors of the bad files).

    A broken file does not stop the others from loading.
    """
    names: list[str] = []
    errors: list[str] = []
    for path in data_dir_tool_files(data_dir):
        try:
            names += register_tool_files([path])
        except ToolFileError as exc:
            errors.append(str(exc))
    return names, errors
