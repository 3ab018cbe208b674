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


# Adapters shipped in the repository, one folder per preset name holding adapter_config.json. Known here
# (not in ``models``) so that the default model needs no import of ``models``: settings sit below it.
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"  # the project's own data, read-only
EVAL_ASSETS_DIR = ASSETS_DIR / "eval"  # the fixed evaluation suites (evaluation.suites writes them)
SHIPPED_MODELS_DIR = ASSETS_DIR / "models"
SHIPPED_TOOLFORMER = "smollm2-135m-toolformer"


def shipped_model_dir(name: str) -> Path | None:
    """The folder of the shipped adapter ``name`` when it is installed (holds adapter_config.json), else None."""
    path = SHIPPED_MODELS_DIR / name
    return path if (path / "adapter_config.json").exists() else None


def default_chat_model() -> str:
    """The model the Chat and Evaluate tabs start with: the shipped Toolformer adapter when it is present
    (and no other default was set), else ``default_model()``."""
    if os.environ.get("TOOLFORMER_DEFAULT_MODEL"):
        return default_model()
    return SHIPPED_TOOLFORMER if shipped_model_dir(SHIPPED_TOOLFORMER) else default_model()


class SettingError(ValueError):
    """A setting from the environment is malformed; the message is one line naming it."""


def _int_setting(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw[:40]!r} is not a whole number (default {default})") from None
    if value < minimum:
        raise SettingError(f"{name}={raw!r} must be at least {minimum} (default {default})")
    return value


def max_text_chars() -> int:
    """Inputs longer than this are cut, with a note, before any model pass."""
    return _int_setting("TOOLFORMER_MAX_TEXT_CHARS", 20000)


def max_eval_items() -> int:
    """The UI's cap on items per evaluation suite (one anonymous call must not start hours of work)."""
    return _int_setting("TOOLFORMER_MAX_EVAL_ITEMS", 50)


def model_cache_size() -> int:
    """Models kept loaded at once (least recently used one is freed); each costs its weights in RAM."""
    return _int_setting("TOOLFORMER_MODEL_CACHE_SIZE", 2)


def max_upload_bytes() -> int:
    """Uploads larger than TOOLFORMER_MAX_UPLOAD_MB megabytes are refused (Gradio stops them first)."""
    return _int_setting("TOOLFORMER_MAX_UPLOAD_MB", 20) * 1_000_000


def max_queue_size() -> int | None:
    """Events waiting in the queue at once (TOOLFORMER_MAX_QUEUE); more are refused with "queue full".
    Default: 64 on a public deployment, unbounded elsewhere."""
    return _int_setting("TOOLFORMER_MAX_QUEUE", 64) if public() or os.environ.get("TOOLFORMER_MAX_QUEUE") else None


def max_queued_per_client() -> int | None:
    """Model-bound events (Annotate, Evaluate, Chat) one client address may have queued or running at once
    (TOOLFORMER_MAX_QUEUED_PER_CLIENT). Default: 2 on a public deployment, unbounded elsewhere."""
    name = "TOOLFORMER_MAX_QUEUED_PER_CLIENT"
    return _int_setting(name, 2) if public() or os.environ.get(name) else None


def max_upload_cache_bytes() -> int:
    """The most that Gradio's upload cache may hold in all (TOOLFORMER_MAX_UPLOAD_CACHE_MB, default 500);
    the per-client share is a fifth of it. Uploads beyond it are refused."""
    return _int_setting("TOOLFORMER_MAX_UPLOAD_CACHE_MB", 500) * 1_000_000


def public() -> bool:
    """A public deployment (a Space, or TOOLFORMER_PUBLIC=1): the model field accepts only presets,
    hub ids and model directories inside the data dir, and never says which server paths exist."""
    return bool(os.environ.get("SPACE_ID")) or os.environ.get("TOOLFORMER_PUBLIC", "").strip() == "1"


def allowed_models() -> tuple[str, ...] | None:
    """TOOLFORMER_ALLOWED_MODELS (comma-separated presets / hub ids): when set, the only names the
    app loads besides models in the data dir. None: any preset or hub id."""
    raw = os.environ.get("TOOLFORMER_ALLOWED_MODELS", "")
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    return names or None


def check_settings() -> None:
    """Validate every numeric setting once at start-up; SettingError (one line) on the first bad one."""
    max_text_chars()
    max_eval_items()
    model_cache_size()
    max_upload_bytes()
    max_queue_size()
    max_queued_per_client()
    max_upload_cache_bytes()


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
