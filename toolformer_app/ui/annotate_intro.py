"""The Annotate tab's first line: what pressing Annotate does, and how long it takes on this machine.

The time comes from the last annotation run on this machine, else from a reference measurement scaled by the
number of CPU cores (a GPU is much faster than either). Off a public deployment the last run's time is kept in
``<data dir>/annotate_timing.json``; on one it stays in memory: a visitor's run is never stored, and never
becomes the estimate every later start shows.
"""

from __future__ import annotations

import json
import os
from typing import Any

from toolformer_app import config

# The reference measurement (2 CPU cores, avx512_bf16, no GPU): assets/examples/orchard.txt (2 sentences, 33
# tokens) with Calculator and Calendar at their default k and m, smollm2-135m in bf16: 40.7 s of CPU time, so
# about 20 s of wall time on an idle machine; per text and tool:
DEV_SECONDS_PER_TEXT_TOOL = 10.0
DEV_CORES = 2
TIMING_FILE = "annotate_timing.json"
_in_memory: dict[str, Any] = {}  # a public deployment's last run (nothing from Annotate is written there)


def _machine() -> tuple[str, bool]:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}", True
    except Exception:  # no torch yet, a broken driver: describe the CPU
        pass
    cores = os.cpu_count() or 1
    return f"{cores} CPU core{'s' if cores != 1 else ''}, no GPU", False


def record(seconds: float, n_texts: int, tools: list[str] | tuple[str, ...], model: str) -> None:
    """Keep the last run's seconds per text and tool, for the next start's estimate. Never fails the run."""
    if n_texts < 1 or not tools or seconds <= 0:
        return
    from toolformer_app.files import atomic_write_json

    data = {"model": model, "seconds_per_text_tool": seconds / (n_texts * len(tools)), "machine": _machine()[0]}
    if config.public():
        _in_memory.clear()
        _in_memory.update(data)
        return
    try:
        atomic_write_json(config.data_dir() / TIMING_FILE, data)
    except OSError:
        pass


def _measured(model: str) -> float | None:
    data: dict[str, Any] = dict(_in_memory)
    if not data:
        try:
            data = json.loads((config.data_dir() / TIMING_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    if not isinstance(data, dict) or data.get("model") != model or data.get("machine") != _machine()[0]:
        return None
    value = data.get("seconds_per_text_tool")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def intro_line(tools: list[str] | tuple[str, ...], model: str | None = None) -> str:
    """One line: what Annotate does, and the expected time for one text with ``tools`` on this machine."""
    model = model or config.default_model()
    machine, gpu = _machine()
    per = _measured(model)
    if per is not None:
        how, source = f"about {max(1, round(per * len(tools)))} s", "timed on the last run"
    elif gpu:
        how, source = "a few seconds", "estimated"
    else:
        cores = min(os.cpu_count() or 1, 8)  # beyond ~8 threads a 135M model's passes hardly speed up
        seconds = DEV_SECONDS_PER_TEXT_TOOL * len(tools) * DEV_CORES / cores
        how, source = f"about {max(1, round(seconds / 5) * 5)} s", "estimated"
    names = " and ".join([", ".join(tools[:-1]), tools[-1]] if len(tools) > 1 else list(tools))
    return (f"Press **Annotate**: `{model}` picks where a call would help, samples calls there, runs {names} and "
            f"scores each result: {how} per text on this machine ({machine}; {source}).")
