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
from pathlib import Path
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
    """(model, tokenizer) for a preset, hub id or directory; raises ModelLoadError with one line.

    On a public deployment a name that is not offered (a preset, an allowed name, a finetune in the
    data dir) and fails to load gets check_allowed's one refusal message, whatever the reason: "not in
    the hub cache" for a missing file but "not available" for an existing one would tell which server
    paths exist. Such a name is never written to the shared status line either.
    """
    from toolformer_app import models

    name = (name or config.default_model()).strip()
    models.check_allowed(name)  # before the status line: a refused name is never shown to other sessions
    typed = config.public() and _typed_path(name)
    before = _get_status(name)
    _set_status(name, "loading…")
    try:
        loaded = models.load(name)
    except Exception as exc:  # anything while loading is a load failure, in one line
        from toolformer_app.ui.render import one_line

        if typed:  # a path someone typed: its failure is theirs, not a fact about the shared model
            _set_status(name, before)
            raise _refusal() from None
        _set_status(name, "failed" if config.public() else f"failed: {one_line(exc)}")
        if config.public() and not _offered(name):
            raise _refusal() from None
        if isinstance(exc, models.ModelLoadError):
            raise
        raise models.ModelLoadError(f"could not load {name!r}: {one_line(exc)}") from exc
    _set_status(name, "ready")
    with _status_lock:
        _keys[_status_key(name)] = _cache_key(name)
    return loaded


def _typed_path(name: str) -> bool:
    """A model directory named by a path (not a preset, an allowed name or a finetune's job id)."""
    from toolformer_app import models

    return models.finetune_dir(name) is None and _in_data_dir(name)


def _status_key(name: str) -> str:
    """One entry per model in the status line: a directory of a finetune by its job id however it was
    spelled (``ft-…``, ``runs/finetuned/ft-…/``, an absolute path), another directory in the data dir by its
    place there."""
    if not _in_data_dir(name):
        return name
    try:
        root = config.data_dir().resolve()
        path = Path(name).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return name
    if path.parent == root / "finetuned" and path.name.startswith("ft-"):  # a finetune: by its job id
        return path.name
    return path.relative_to(root).as_posix()


def _cache_key(name: str) -> str | None:
    """The key ``models.load`` cached ``name`` under (to tell when it was evicted); None if unknown."""
    from toolformer_app import models

    try:
        return models.cache_key(models.resolve(name))
    except Exception:
        return None


def _offered(name: str) -> bool:
    """A name this deployment offers: a preset (or an allowed name), or a model directory in the data dir."""
    from toolformer_app import models

    allowed = config.allowed_models()
    local = _in_data_dir(name) or models.finetune_dir(name) is not None
    if allowed is not None:
        return name in allowed or local
    return name in models.PRESETS or name in models.ADAPTER_PRESETS or local


def _in_data_dir(name: str) -> bool:
    try:
        root = config.data_dir().resolve()
        path = Path(name).expanduser().resolve()
        return path != root and path.is_relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return False


def _refusal() -> Exception:
    """check_allowed's own refusal (one message for every refused name), from a name it always refuses."""
    from toolformer_app import models

    try:
        models.check_allowed("\x00")  # a NUL is never a preset, hub id or path
    except models.ModelLoadError as exc:
        return exc
    return models.ModelLoadError("this model is not available here")


def _shown(name: str) -> str | None:
    """How the shared status line names a model: a directory by its folder name (never a server path);
    on a public deployment, None (not shown) for a name it does not offer (another visitor typed it)."""
    if config.public() and not _offered(name):
        return None
    path = Path(name).expanduser()
    return path.name if (path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1) else name


MAX_STATUS_MODELS = 4  # names typed by users must not grow the shared status line without bound
_keys: dict[str, str | None] = {}  # model name -> its key in the model cache, once loaded


def _get_status(name: str) -> str | None:
    with _status_lock:
        return _status.get(_status_key(name))


def _set_status(name: str, text: str | None) -> None:
    """Set (or with None, remove) the status line's entry of the model ``name`` names."""
    shown = _shown(name)
    if shown is None:
        return
    key = _status_key(name)
    with _status_lock:
        _status.pop(key, None)
        if text is None:
            _labels.pop(key, None)
            return
        _status[key] = text
        _labels[key] = key if key != name else shown
        while len(_status) > MAX_STATUS_MODELS:
            old = next(iter(_status))
            _status.pop(old)
            _labels.pop(old, None)


_labels: dict[str, str] = {}


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
    from toolformer_app import models

    with _status_lock:
        items = dict(_status)
        labels = dict(_labels)
        keys = dict(_keys)
    if not items:
        return f"**Model** loads on first use (default `{config.default_model()}`)"
    cached: set[str] | None = None
    if models.LOAD_LOCK.acquire(timeout=0.1):  # held for a whole load: the line must not wait for one
        try:
            cached = set(models.cached_models())
        finally:
            models.LOAD_LOCK.release()
    parts = []
    for name, text in items.items():
        if (cached is not None and text.startswith("ready") and keys.get(name) is not None
                and keys[name] not in cached):
            text = "unloaded (loads again on use)"  # evicted by a newer model (TOOLFORMER_MODEL_CACHE_SIZE)
        parts.append(f"`{labels.get(name, name)}` {text}")
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


def offered_models(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Only what this deployment loads: on a public one with TOOLFORMER_ALLOWED_MODELS, the presets
    listed there (and finetunes), so a name that would be refused is never offered in a dropdown
    or in the API's Literal."""
    from toolformer_app import models

    allowed = config.allowed_models()
    if not config.public() or allowed is None:
        return choices
    presets = set(models.PRESETS) | set(models.ADAPTER_PRESETS)
    return [(label, value) for label, value in choices if value not in presets or value in allowed]


# -- memory -----------------------------------------------------------------------------------------
def _libc() -> Any | None:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (no-op elsewhere). glibc gives threads that allocate their own arena, up to
    8 per core, and keeps freed tensors' memory in them: with the decoding server, the tool pool, the
    evaluation worker and Gradio's workers each allocating, the app's RSS grew by 500-900 MB over a one-minute
    soak on 2 cores. Arenas made after this call follow the cap."""
    libc = _libc()
    return bool(libc and libc.mallopt(-8, int(arenas)))  # -8: M_ARENA_MAX


def release_memory() -> None:
    """Hand freed heap memory back to the OS after a model job (glibc's malloc_trim; no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
