"""What the tabs share at run time: the process-wide model cache, its status line, and GPU wrapping.

Models, threads and locks live here (module level), never in ``gr.State``: per-session state holds
only plain data, so two browser sessions never see each other's runs.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from toolformer_app import config

MODEL_CONCURRENCY = "model"  # every model-bound event shares this queue (one GPU, one model pass at a time)
MAX_UI_TEXTS = 16  # texts per Annotate run; a corpus belongs to `python -m toolformer_app generate`

F = TypeVar("F", bound=Callable[..., Any])

_status: dict[str, str] = {}
_status_lock = threading.Lock()


def gpu_bound(fn: F) -> F:
    """Wrap a model-bound function with ``spaces.GPU`` on a ZeroGPU Space (a no-op elsewhere)."""
    if os.environ.get("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None:
        import spaces

        return spaces.GPU(fn)  # type: ignore[return-value]
    return fn


def get_model(name: str | None) -> tuple[Any, Any]:
    """(model, tokenizer) for a preset, hub id or directory; raises ModelLoadError with one line."""
    from toolformer_app import models

    name = (name or config.default_model()).strip()
    models.check_allowed(name)  # before the status line: a refused name is never shown to other sessions
    _set_status(name, "loading…")
    try:
        loaded = models.load(name)
    except models.ModelLoadError as exc:
        _set_status(name, f"failed: {exc}")
        raise
    except Exception as exc:  # anything else while loading is still a load failure, in one line
        from toolformer_app.ui.render import one_line

        _set_status(name, f"failed: {one_line(exc)}")
        raise models.ModelLoadError(f"could not load {name!r}: {one_line(exc)}") from exc
    _set_status(name, "ready")
    return loaded


MAX_STATUS_MODELS = 4  # names typed by users must not grow the shared status line without bound


def _set_status(name: str, text: str) -> None:
    with _status_lock:
        _status.pop(name, None)
        _status[name] = text
        while len(_status) > MAX_STATUS_MODELS:
            _status.pop(next(iter(_status)))


def preload_in_background(name: str | None = None) -> threading.Thread:
    """Load the default model in a thread, so the page is served at once and the status shows progress."""
    name = (name or config.default_model()).strip()
    _set_status(name, "loading…")

    def work() -> None:
        t0 = time.perf_counter()
        try:
            get_model(name)
            _set_status(name, f"ready (loaded in {time.perf_counter() - t0:.0f} s)")
        except Exception:
            pass  # get_model recorded the failure in the status line

    thread = threading.Thread(target=work, name="toolformer-preload", daemon=True)
    thread.start()
    return thread


def status_line() -> str:
    """A one-line Markdown status of the models this process has touched."""
    with _status_lock:
        items = dict(_status)
    if not items:
        return f"**Model** loads on first use (default `{config.default_model()}`)"
    parts = [f"`{name}` {text}" for name, text in items.items()]
    return "**Model** " + " · ".join(parts)


def loading() -> bool:
    with _status_lock:
        return any(v.startswith("loading") for v in _status.values())


def checked_input(text: str | None, empty_message: str) -> str:
    """User text with NULs removed and lone surrogates replaced (``files.clean_text``), cut at
    TOOLFORMER_MAX_TEXT_CHARS (with a warning); gr.Error if nothing but whitespace or control characters."""
    import gradio as gr

    from toolformer_app.files import clean_text, is_blank
    from toolformer_app.ui import render

    text = clean_text(text)
    if is_blank(text):
        raise gr.Error(empty_message)
    text, note = render.cut_text(text, config.max_text_chars())
    if note:
        gr.Warning(note)
    return text
