"""Settings read from the environment, in one place (the UI, the CLI and the library all read them here)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The only directory the app writes to (datasets, jobs, checkpoints, model cache)."""
    path = Path(os.environ.get("TOOLFORMER_DATA_DIR", "runs")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_cache_dir() -> Path:
    """Where converted models (GGUF -> safetensors) are cached; shared by every data dir unless set."""
    path = Path(os.environ.get("TOOLFORMER_MODEL_CACHE", data_dir() / "models")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_model() -> str:
    """The preset or hub id used when none is given (on Spaces, set a hub id here)."""
    return os.environ.get("TOOLFORMER_DEFAULT_MODEL", "smollm2-135m")


def default_chat_model() -> str:
    """The model the Chat and Evaluate tabs start with: the shipped Toolformer adapter when it is present
    (and no other default was set), else ``default_model()``."""
    if os.environ.get("TOOLFORMER_DEFAULT_MODEL"):
        return default_model()
    from toolformer_app.models import shipped_adapter

    return "smollm2-135m-toolformer" if shipped_adapter("smollm2-135m-toolformer") else default_model()


def max_text_chars() -> int:
    """Inputs longer than this are cut, with a note, before any model pass."""
    return int(os.environ.get("TOOLFORMER_MAX_TEXT_CHARS", "20000"))


def admin_token() -> str | None:
    """When set (public Spaces), launching and cancelling finetunes require it."""
    return os.environ.get("TOOLFORMER_ADMIN_TOKEN") or None


def hub_configured() -> bool:
    """True when the user asked for hub access (a Space, or TOOLFORMER_ONLINE=1)."""
    return bool(os.environ.get("SPACE_ID") or os.environ.get("TOOLFORMER_ONLINE") == "1")


def setup_offline_env() -> None:
    """Make every library stay offline unless a hub is configured. Call before importing gradio."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if not hub_configured():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
