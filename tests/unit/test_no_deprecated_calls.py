"""The project's own code calls no deprecated transformers or torch API.

transformers announces removals two ways: a ``FutureWarning`` from ``deprecate_kwarg`` (e.g. "`past_key_values`
is deprecated and will be removed in version 5.40.0 ... Use `cache` instead"), and a ``logger.warning_once``
from its output classes (reading ``out.past_key_values``). Both are caught here while the model-calling paths run
on a tiny llama: the pipeline's cached scoring and sampling, decoding with tools, the evaluator's greedy loop,
PaLM with its KV cache, and a LoRA finetune step.

A warning counts as the project's when the code that called into the announcing library (transformers or torch,
past ``nn.Module.__call__``) is in ``toolformer_app/``. A deprecation that another library triggers (peft reading
``is_gradient_checkpointing``) is not the project's call, and the project cannot move off it.
"""

from __future__ import annotations

import logging
import traceback
import warnings
from pathlib import Path

import pytest
import torch

import toolformer_app

PACKAGE_DIR = str(Path(toolformer_app.__file__).resolve().parent)
_PLUMBING = ("/warnings.py", "/functools.py", "/contextlib.py", "/logging/__init__.py", "/torch/nn/modules/module.py",
             "/torch/utils/_contextlib.py")
_WATCHED = ("transformers", "torch")


def _library(filename: str) -> str | None:
    parts = Path(filename).parts
    return parts[parts.index("site-packages") + 1] if "site-packages" in parts[:-1] else None


def _caller_of_deprecated(stack: list[traceback.FrameSummary]) -> str:
    """The file that called into transformers/torch where the deprecation was announced, or "".

    Walks outwards from the innermost frame: skips the plumbing (warnings, logging, nn.Module.__call__) and the
    frames of the library that announced it; the next frame is the caller. Only transformers and torch count.
    """
    frames = [f for f in reversed(stack) if __file__ not in f.filename]
    emitter = None
    for frame in frames:
        if any(p in frame.filename for p in _PLUMBING):
            continue
        lib = _library(frame.filename)
        if emitter is None:
            if lib not in _WATCHED:
                return ""
            emitter = lib
            continue
        if lib == emitter:
            continue
        return frame.filename
    return ""


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "deprecat" in message.lower() and _caller_of_deprecated(traceback.extract_stack()).startswith(PACKAGE_DIR):
            self.found.append(f"transformers logger: {message}")


@pytest.fixture
def deprecations():
    """Yields a list that fills with every deprecation the project's own code triggers."""
    from transformers.utils import logging as hf_logging

    found: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (DeprecationWarning, FutureWarning)):
            caller = _caller_of_deprecated(traceback.extract_stack()[:-1])
            if caller.startswith(PACKAGE_DIR):
                found.append(f"{category.__name__} via {caller}: {message}")

    logger = hf_logging.get_logger("transformers")
    logger.warning_once.cache_clear()  # warning_once remembers what it already said in this process
    recorder = _Recorder()
    logger.addHandler(recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield found
    logger.removeHandler(recorder)
    found.extend(recorder.found)


def test_pipeline_cached_scoring_and_sampling_use_no_deprecated_api(tiny_model, deprecations):
    from toolformer_app.pipeline import run as pr
    from toolformer_app.pipeline.config import PipelineConfig
    from toolformer_app.tools import get_tool

    model, tok = tiny_model
    cfg = PipelineConfig(tools=("Calculator",), tau_s=0.0, k=1, m=2, max_call_tokens=3, batch_size=2)
    pr.annotate_batch(model, tok, [("a", "The farm had 12 cows and bought 30 more, so it now has 42 cows.")], [get_tool("Calculator")],
                      cfg)
    assert deprecations == []


def test_decoding_with_tools_and_eval_greedy_use_no_deprecated_api(tiny_model, deprecations):
    from toolformer_app.decoding import InferenceConfig, generate_with_tools
    from toolformer_app.evaluation.predict import plain_greedy
    from toolformer_app.tools import get_tool

    model, tok = tiny_model
    list(generate_with_tools(model, tok, "The farm has 48 cows and", {"Calculator": get_tool("Calculator")},
                             InferenceConfig(max_new_tokens=4)))
    plain_greedy(model, tok, "The answer is", 3)
    assert deprecations == []


def test_palm_with_its_kv_cache_uses_no_deprecated_api(deprecations):
    from toolformer_app.models.palm import PaLM

    palm = PaLM(dim=32, num_tokens=100, depth=1, heads=2, dim_head=16)
    ids = torch.randint(0, 100, (1, 9))
    first = palm(ids[:, :5], use_cache=True)
    palm(ids[:, 5:], cache=first.cache, use_cache=True)
    assert deprecations == []


def test_lora_finetune_uses_no_deprecated_api(tiny_model, tmp_path, deprecations):
    import json

    from toolformer_app.training import trainer as tr
    from toolformer_app.training.options import FinetuneConfig

    model, tok = tiny_model
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    data = tmp_path / "cstar.jsonl"
    data.write_text("".join(json.dumps({"text": f"{a} plus {a} is {2 * a} [Calculator({a} + {a}) -> {2 * a}] {2 * a}."})
                            + "\n" for a in range(4)))
    cfg = FinetuneConfig(data=str(data), model=str(tmp_path / "tiny"), out_dir=str(tmp_path / "out"), max_steps=1,
                         batch_size=2, max_length=48, eval_fraction=0, save_every=1, lora=True, warmup_ratio=0.0)
    tr.run_finetune(cfg, tmp_path / "job")
    assert deprecations == []
