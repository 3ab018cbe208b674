"""Atomic writes (temp file, then rename) and tolerant JSONL reading: no half-written file is ever seen."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def jsonl_text(rows: Iterable[dict[str, Any]]) -> str:
    """JSONL as one string; ValueError (one line, naming the row's "id" or "text_id") when a row holds a
    string that UTF-8 cannot encode (a lone surrogate), checked before anything is written."""
    lines = []
    for n, row in enumerate(rows, 1):
        line = json.dumps(row, ensure_ascii=False)
        bad = _LONE_SURROGATE.search(line)
        if bad:
            name = row.get("id", row.get("text_id", f"row {n}")) if isinstance(row, dict) else f"row {n}"
            raise ValueError(f"{name}: not valid text (a lone surrogate \\u{ord(bad.group()):04x})")
        lines.append(line + "\n")
    return "".join(lines)


def atomic_write_dir(path: str | Path, files: dict[str, str]) -> Path:
    """Create the directory ``path`` holding ``files`` (name -> text) all at once: they are written to a
    hidden sibling first, which is renamed into place, so a failure leaves no folder (empty or partial)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        for name, text in files.items():
            with open(staging / name, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        staging.chmod(0o755)  # mkdtemp makes it private; the folder is a normal one once in place
        os.rename(staging, path)  # fails if path exists: never merged into another folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def prune_dirs(parent: str | Path, prefix: str, keep: int) -> None:
    """Remove all but the newest ``keep`` folders named ``prefix*`` in ``parent`` (a quota; best effort)."""
    dirs = sorted((d for d in Path(parent).glob(f"{prefix}*") if d.is_dir()), key=lambda d: d.stat().st_mtime,
                  reverse=True)
    for old in dirs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one complete line with a single write (a crash leaves at most a torn last line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path, errors: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; malformed lines are skipped and reported in ``errors`` by line number."""
    for _, row in read_jsonl_numbered(path, errors):
        yield row


def parse_json_line(line: str) -> Any:
    """One JSON value from untrusted text; ValueError with a one-line reason (no line number).

    Beyond ``json.loads``: nesting deep enough to exhaust the recursion limit is refused (not a
    RecursionError), and so is a string holding a lone surrogate (``"\\ud800"``), which no UTF-8
    writer, tokenizer or HTTP response can encode.
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    if _SURROGATE_ESCAPE.search(line):  # only an escape can put one there: the text itself is valid UTF-8
        bad = first_lone_surrogate(value)
        if bad is not None:
            raise ValueError(f"not valid text (a lone surrogate \\u{ord(bad):04x}; use UTF-8 characters)")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def first_lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in any string (key or value) of a parsed JSON value, or None.
    Iterative: the value may be nested as deep as the parser allowed."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _LONE_SURROGATE.search(item)
            if found:
                return found.group()
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def clean_text(text: str | None) -> str:
    """User text made safe for a tokenizer and a UTF-8 response: NULs removed, lone surrogates
    (a stray escape in JSON, undecodable bytes in argv) replaced by U+FFFD, and a leading BOM dropped."""
    return _LONE_SURROGATE.sub("\ufffd", (text or "").replace("\x00", "")).removeprefix("\ufeff")


def is_blank(text: str) -> bool:
    """True when ``text`` holds nothing to continue from: only whitespace, control and format characters
    and U+FFFD (``"\\x01\\x02"`` is as empty as spaces; a model pass on it would cost a full generation)."""
    return all(ch.isspace() or ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text)


def read_jsonl_numbered(path: str | Path, errors: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(file line number, row) of a JSONL file: messages about a row can name its line in the file.
    File iteration splits at line ends only (``str.splitlines`` would also split inside a text at U+2028)."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # -sig: a BOM is not part of line 1
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = parse_json_line(line)
            except ValueError as exc:
                if errors is not None:
                    errors.append(f"line {n}: {exc}")
                continue
            if not isinstance(row, dict):
                if errors is not None:
                    errors.append(f"line {n}: expected a JSON object")
                continue
            yield n, row


def read_text_file(path: str | Path, max_bytes: int | None = None) -> str:
    """The whole file as UTF-8 text; ValueError (one line, naming the file only) when it is larger than
    ``max_bytes``, holds a NUL byte anywhere, or is not UTF-8. Every byte is checked, not a prefix."""
    p = Path(path)
    size = p.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{p.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    raw = p.read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"{p.name} looks binary (a NUL byte at {nul}); give a .txt or .jsonl file")
    try:
        return raw.decode("utf-8-sig")  # an editor's BOM is not part of the first line
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p.name} looks binary (not UTF-8 at byte {exc.start}); give a .txt or .jsonl file") from None


def repair_jsonl(path: str | Path) -> None:
    """Drop a torn last line left by an interrupted append (resume relies on whole lines)."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
