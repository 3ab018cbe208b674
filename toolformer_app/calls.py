"""The API-call text format of the paper (section 2).

    e(c)       = " [Tool(input)]"
    e(c, r)    = " [Tool(input) -> r]"
    e(c, eps)  = " [Tool(input) -> ]"      (the arrow is kept, the result is empty)

The leading space belongs to the call: inserting e(c, r) before a token that starts with a
space keeps the surrounding text byte-identical, and removing the span restores it.

Parsing rules (robust to what a sampling LM writes):
- the input runs from "(" to the first ")" followed (after optional spaces) by "]" or "->";
  inputs may hold quotes, commas, unicode and nested parentheses;
- the result runs from "->" to the next "]"; results (and inputs) are sanitised on the way in,
  so "]" and "->" can never occur inside them and a call can never end early;
- a call that is never closed is not a call (``find_calls`` skips it, ``find_open_call`` sees it).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

API_START = " ["
API_END = "]"
ARROW = "->"


def api_token_id(tok: Any) -> int:
    """The one token id of API_START (" [") in ``tok``; every p(" [") in the project is read at this id."""
    ids = tok(API_START, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"this tokenizer splits {API_START!r} into {len(ids)} tokens; the pipeline needs one")
    return ids[0]

_NAME = re.compile(r"\[([A-Za-z_][A-Za-z0-9_]*)\(")
_CLOSE = re.compile(r"\)\s*(\]|->)")
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

ErrorPolicy = Literal["leave", "drop", "error"]


@dataclass(frozen=True)
class ApiCall:
    """One call c = (tool, input), with its result r.

    result is None for e(c) (no arrow), "" for e(c, eps), else the tool's output.
    start/end are the character span in the text it was found in (including the leading space).
    """

    tool: str
    input: str
    result: str | None = None
    start: int = -1
    end: int = -1

    def linearize(self, with_result: bool = True) -> str:
        return linearize(self.tool, self.input, self.result if with_result else None)


def call_closed(decoded: str) -> bool:
    """Whether text sampled after " [" has closed its call: a "]", or ")" then "]" / "->". Checked on
    decoded text, never on a token id (tokenizers merge ")]" and "()]" into single tokens)."""
    return API_END in decoded or _CLOSE.search(decoded) is not None


def sanitize(value: str) -> str:
    """Make a string safe to sit inside a call: no brackets, no arrow, one line."""
    value = value.replace("->", "→").replace("[", "(").replace("]", ")")
    return " ".join(value.split()) if ("\n" in value or "\r" in value) else value


def linearize(tool: str, input: str, result: str | None = None, leading_space: bool = True) -> str:
    """e(c), e(c, r) or e(c, eps) as text. ``result=""`` gives e(c, eps)."""
    head = f"[{tool}({sanitize(input)})"
    body = head + API_END if result is None else f"{head} {ARROW} {sanitize(result).strip()}{API_END}"
    return (" " if leading_space else "") + body


class _NextEnd:
    """The next "]" (and "->") at or after a position, for queries that only move right.

    find_calls asks from every "[" in turn; remembering the last hits makes the whole scan
    linear (rescanning the rest of the text from every "[" was quadratic on "x [a(" * n).
    """

    def __init__(self, text: str, arrow: bool) -> None:
        self.text, self.arrow = text, arrow
        self.bracket = self.arrow_at = -1

    def _next(self, needle: str, cached: int, pos: int) -> int:
        if cached >= pos:
            return cached
        found = self.text.find(needle, pos)
        return len(self.text) if found < 0 else found

    def at(self, pos: int) -> int:
        self.bracket = self._next(API_END, self.bracket, pos)
        if not self.arrow:
            return self.bracket
        self.arrow_at = self._next(ARROW, self.arrow_at, pos)
        return min(self.bracket, self.arrow_at)


def parse_head(text: str, bracket: int = 0, _ends: _NextEnd | None = None) -> tuple[str, str, re.Match] | None:
    """(tool, input, close) for a call whose "[" is at ``bracket`` and whose input is closed.

    ``close`` matches the ")" and what follows it ("]" or "->"). Shared by the parser and the
    pipeline's sampler (which checks the model's samples with exactly the same rules).
    """
    m = _NAME.match(text, bracket)
    if not m:
        return None
    # The input holds no "[", "]" or "->", so its close can only be the first "]" / "->" after it.
    stop = (_ends or _NextEnd(text, arrow=True)).at(m.end())
    if stop >= len(text) or text.find("[", m.end(), stop) >= 0:
        return None
    inp = text[m.end() : stop].rstrip()
    if not inp.endswith(")"):
        return None
    close = _CLOSE.match(text, m.end() + len(inp) - 1)
    if close is None or close.end() - len(close.group(1)) != stop:
        return None
    return m.group(1), inp[:-1], close


def _parse_at(text: str, bracket: int, ends: _NextEnd | None = None,
              brackets: _NextEnd | None = None) -> ApiCall | None:
    """Parse a call whose "[" is at ``bracket``; None if it is not a closed call."""
    head = parse_head(text, bracket, ends)
    if head is None:
        return None
    tool, inp, close = head
    start = bracket - 1 if bracket > 0 and text[bracket - 1] == " " else bracket
    if close.group(1) == API_END:
        return ApiCall(tool, inp, None, start, close.end())
    end = (brackets or _NextEnd(text, arrow=False)).at(close.end())
    if end >= len(text) or text.find("[", close.end(), end) >= 0:
        return None
    return ApiCall(tool, inp, text[close.end() : end].strip(), start, end + 1)


def find_calls(text: str) -> list[ApiCall]:
    """Every closed call in ``text``, left to right, with its character span (linear time)."""
    calls, pos = [], 0
    ends, brackets = _NextEnd(text, arrow=True), _NextEnd(text, arrow=False)
    while (bracket := text.find("[", pos)) >= 0:
        call = _parse_at(text, bracket, ends, brackets)
        if call is None:
            pos = bracket + 1
            continue
        calls.append(call)
        pos = call.end
    return calls


def find_open_call(text: str) -> tuple[str, str] | None:
    """For decoding: if ``text`` ends inside a call that has reached "->", return (tool, input).

    Used at inference to pause at the arrow. Returns None when no unclosed call ends in "->".
    """
    bracket = text.rfind("[")
    if bracket < 0 or API_END in text[bracket:]:
        return None
    m = _NAME.match(text, bracket)
    if not m:
        return None
    close = re.compile(r"\)\s*->\s*$").search(text, m.end())
    if not close:
        return None
    return m.group(1), text[m.end() : close.start()]


def strip_calls(text: str) -> str:
    """Remove every call (and its leading space): the inverse of inserting calls."""
    out, pos = [], 0
    for call in find_calls(text):
        out.append(text[pos : call.start])
        pos = call.end
    out.append(text[pos:])
    return "".join(out)


def insert_calls(text: str, calls: list[tuple[int, ApiCall]]) -> str:
    """x* = x_<i e(c, r) x_>=i for each (char offset, call); offsets refer to ``text``.

    Raises ValueError for an offset outside the text, a tool name that is not an identifier, or a
    call that would not parse back as itself, so removing the calls always gives ``text`` back.
    """
    out, pos, size, spans = [], 0, 0, []
    for offset, call in sorted(calls, key=lambda oc: oc[0]):
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= len(text):
            raise ValueError(f"call position {offset!r} is outside the text (0..{len(text)})")
        if not isinstance(call.tool, str) or not _TOOL_NAME.fullmatch(call.tool):
            raise ValueError(f"tool name {str(call.tool)[:40]!r} is not an identifier")
        piece = call.linearize()
        out.append(text[pos:offset])
        size += offset - pos
        spans.append((size, size + len(piece)))
        out.append(piece)
        size += len(piece)
        pos = offset
    out.append(text[pos:])
    merged = "".join(out)
    for start, end in spans:  # each inserted call must read back as exactly its own span
        found = _parse_at(merged, start + 1)
        if found is None or (found.start, found.end) != (start, end):
            raise ValueError(f"the call at {start} does not parse back from the text")
    return merged


def call_function(fn: Callable[..., Any], input: str) -> Any:
    """Tools take the raw input string; plain functions (toolformer-pytorch's ``inc`` example) get literal args."""
    if getattr(fn, "is_toolformer_tool", False):
        return fn(input)
    if not input.strip():
        return fn()
    try:  # literal_eval only builds literals: it never runs code
        args = ast.literal_eval(f"({input},)")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return fn(input)
    return fn(*args)


def invoke_tools(
    registry: Mapping[str, Callable[..., Any]],
    text: str,
    policy: ErrorPolicy = "leave",
) -> str:
    """Execute every call without a result: ``[inc(1)]`` becomes ``[inc(1) -> 2]``.

    Unknown tools and calls that already hold a result are left alone. A tool that raises
    or returns nothing is handled by ``policy``: leave the call, drop it, or insert the error.
    """
    out, pos = [], 0
    for call in find_calls(text):
        if call.result is not None or call.tool not in registry:
            continue
        try:
            value = call_function(registry[call.tool], call.input)
            error = None if value is not None and str(value) != "" else "no result"
        except Exception as exc:  # a tool's failure must never break the text
            value, error = None, f"{type(exc).__name__}: {exc}"
        if error is None:
            new = replace(call, result=str(value))
        elif policy == "leave":
            continue
        elif policy == "drop":
            new = None
        else:
            new = replace(call, result=f"Error: {error}")
        out.append(text[pos : call.start])
        if new is not None:
            out.append(new.linearize() if text[call.start] == " " else new.linearize()[1:])
        pos = call.end
    out.append(text[pos:])
    return "".join(out)
