"""Atomic writes (temp file, then rename) and tolerant JSONL reading: no half-written file is ever seen."""

from __future__ import annotations

import json
import os
import tempfile
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


def read_jsonl_numbered(path: str | Path, errors: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(file line number, row) of a JSONL file: messages about a row can name its line in the file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if errors is not None:
                    errors.append(f"line {n}: not valid JSON ({exc.msg})")
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
        return raw.decode("utf-8")
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
