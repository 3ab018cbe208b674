"""Progress events of a finetune: one JSON object per line, appended and flushed, polled by the UI.

Event types (every event also has "time", seconds since the epoch):
    {"type": "start", "step", "total_steps", "resumed_from", "data", "train_sequences", "eval_sequences", "device"}
    {"type": "status", "message"}                                   (free text: loading, memory check, saving)
    {"type": "progress", "step", "total_steps", "loss", "lr", "tokens_per_s", "eta_s", "epoch"}
    {"type": "eval", "step", "eval_loss", "perplexity"}
    {"type": "checkpoint", "step", "path"}
    {"type": "cancelled", "step", "checkpoint"}
    {"type": "done", "metrics", "path"}
    {"type": "error", "message"}
A resumed job appends to the same file, so a curve continues across attempts.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class EventWriter:
    """Appends events to a JSONL file. Each line is written with one write() call and flushed,
    so a reader never sees half an event except possibly a trailing partial line (which it skips)."""

    def __init__(self, path: str | Path | None, enabled: bool = True):
        self.path = Path(path) if path else None
        self.enabled = enabled and self.path is not None
        self._lock = threading.Lock()
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type, "time": round(time.time(), 3), **fields}
        if not self.enabled:
            return event
        line = json.dumps(event, default=_jsonable, allow_nan=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return event


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def clean_float(value: Any) -> float | None:
    """JSON has no NaN/inf: those become None (a diverged loss shows as a gap, not a crash)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def read_event_file(path: str | Path, since: int = 0) -> list[dict[str, Any]]:
    """Events number ``since`` onwards (0-based); a trailing line still being written is skipped."""
    p = Path(path)
    if not p.exists():
        return []
    events = []
    with open(p, encoding="utf-8") as f:
        content = f.read()
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # no final newline yet: the writer is mid-line
    for line in lines[max(0, since):]:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append({"type": "corrupt", "line": line[:200]})  # keep numbering stable for `since`
    return events
