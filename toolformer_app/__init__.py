"""Toolformer Studio: a faithful, fast reproduction of Toolformer (Schick et al. 2023)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public API, imported lazily so `import toolformer_app` stays fast (no torch until needed).
_EXPORTS = {
    "ApiCall": "toolformer_app.calls",
    "find_calls": "toolformer_app.calls",
    "invoke_tools": "toolformer_app.calls",
    "linearize": "toolformer_app.calls",
    "strip_calls": "toolformer_app.calls",
    "get_tool": "toolformer_app.tools",
    "default_tools": "toolformer_app.tools",
    "load_model": "toolformer_app.models",
    "Toolformer": "toolformer_app.compat",
    "filter_tokens_with_api_response": "toolformer_app.pipeline.scoring",
    "PaLM": "toolformer_app.models.palm",
    "PipelineConfig": "toolformer_app.pipeline",
    "run_pipeline": "toolformer_app.pipeline",
    "generate_with_tools": "toolformer_app.decoding",
}

__all__ = sorted(_EXPORTS)

# Modules that moved: importing the old name fails with one line that names the new place.
MOVED = {
    "toolformer_app.inference": "toolformer_app.decoding",
    "toolformer_app.batched": "toolformer_app.decoding.batch",
    "toolformer_app.serving": "toolformer_app.decoding.server",
    "toolformer_app.prefix_cache": "toolformer_app.decoding.prefix_cache",
    "toolformer_app.torch_thread": "toolformer_app.decoding.threads",
    "toolformer_app.inference_cli": "toolformer_app.decoding.cli",
    "toolformer_app.seed_api": "toolformer_app.compat",
}


class _MovedFinder:
    """A meta path finder that answers only for the moved names, with a message instead of a bare ModuleNotFound."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name in MOVED:
            raise ModuleNotFoundError(f"{name} has moved: import from {MOVED[name]} instead", name=name)
        return None


import sys as _sys  # noqa: E402

if not any(isinstance(f, _MovedFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_MovedFinder())

if TYPE_CHECKING:  # pragma: no cover
    from toolformer_app.calls import ApiCall, find_calls, invoke_tools, linearize, strip_calls  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'toolformer_app' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_EXPORTS[name])
    attr = "load" if name == "load_model" else name
    return getattr(module, attr)
