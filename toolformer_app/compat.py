"""The toolformer-pytorch API (its README's examples), as thin wrappers over the pipeline, training and inference.

    toolformer = Toolformer(model=..., tokenizer=..., tools=[...], finetune=True)
    stats = toolformer(data)            # annotate -> execute -> filter -> (finetune)
    toolformer.sample_model_with_api_calls("How many days until New Year?")

toolformer-pytorch's single-tool form also works: ``Toolformer(model=..., teach_tool_prompt=prompt,
tool_id="Calendar", tool=Calendar)`` with a plain Python function and a prompt holding "[input]".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from toolformer_app import config as app_config
from toolformer_app.tools import get_tool
from toolformer_app.tools.base import Tool
from toolformer_app.tools.function import PLACEHOLDER, FunctionTool  # re-exported: toolformer-pytorch names them

__all__ = ["PLACEHOLDER", "FunctionTool", "Toolformer"]


class Toolformer:
    """Annotate data with API calls, keep the helpful ones, optionally finetune, then sample with tools."""

    def __init__(self, model: Any = None, tokenizer: Any = None, tools: Sequence[Tool | str] | None = None, *,
                 teach_tool_prompt: str | None = None, tool_id: str | None = None, tool: Callable | None = None,
                 model_seq_len: int = 256, finetune: bool = False, config: Any = None,
                 finetune_config: dict[str, Any] | None = None, out_dir: str | Path | None = None, **_: Any):
        from toolformer_app import models
        from toolformer_app.pipeline import PipelineConfig

        self.model_name = model if isinstance(model, str) or model is None else None
        if self.model_name is not None or model is None:
            self.model, loaded_tok = models.load(self.model_name)
        else:
            self.model, loaded_tok = model, None
        self.tokenizer = tokenizer or loaded_tok or models.load(None)[1]
        self.tools: list[Tool] = [t if isinstance(t, Tool) else get_tool(t) for t in (tools or [])]
        if tool is not None:
            self.tools.append(FunctionTool(name=tool_id or tool.__name__, fn=tool, teach_prompt=teach_tool_prompt or ""))
        if not self.tools:
            raise ValueError("give tools=[...] or tool=/tool_id=/teach_tool_prompt=")
        self.config = config or PipelineConfig(tools=tuple(t.name for t in self.tools))
        self.model_seq_len = model_seq_len
        self.finetune = finetune
        self.finetune_config = dict(finetune_config or {})
        self.out_dir = Path(out_dir) if out_dir else app_config.data_dir() / "toolformer" / time.strftime("%Y%m%d-%H%M%S")
        self.result = None

    @property
    def registry(self) -> dict[str, Tool]:
        return {t.name: t for t in self.tools}

    def __call__(self, data: Sequence[str]) -> dict[str, Any]:
        """Run the pipeline on ``data``; returns {"stats", "dataset", "candidates"} (and "finetune" if on)."""
        from toolformer_app.pipeline.batching import TokenCounter
        from toolformer_app.pipeline.cstar import write_cstar
        from toolformer_app.pipeline.filtering import build_stats
        from toolformer_app.pipeline.run import PipelineResult, annotate_batch

        items = [(str(i), t) for i, t in enumerate(data)]
        counter, start, texts = TokenCounter(), time.perf_counter(), []
        for s in range(0, len(items), self.config.batch_size):
            texts += annotate_batch(self.model, self.tokenizer, items[s : s + self.config.batch_size], self.tools,
                                    self.config, counter)
        self.result = PipelineResult(texts, self.config, counter, time.perf_counter() - start)
        tau_f = {t.name: self.config.thresholds(t).tau_f for t in self.tools}
        # C* through the one writer: out_dir/dataset.jsonl and meta.json (empty when no call is kept)
        cstar = write_cstar(self.out_dir, {t.text_id: t.text for t in texts}, self.result.candidates, tau_f,
                            allow_empty=True)
        dataset = cstar.rows
        out = {"stats": build_stats([t.record() for t in texts], self.result.candidates, tau_f, len(dataset)),
               "dataset": dataset, "candidates": [c.to_dict() for c in self.result.candidates]}
        if self.finetune:
            out["finetune"] = self._finetune(dataset)
        return out

    def _finetune(self, dataset: list[dict[str, Any]]) -> dict[str, Any]:
        """Finetune on C* in a real job process (the same path as the CLI and the UI), then use the result."""
        from toolformer_app import models
        from toolformer_app.training import FinetuneConfig, start_job, wait_job

        if not dataset:
            return {"status": "skipped", "reason": "no call was kept, so there is nothing to finetune on"}
        source = self.model_name
        if source is None:  # a model object: save it so the job process can load it
            source = str(self.out_dir / "base")
            self.model.save_pretrained(source)
            self.tokenizer.save_pretrained(source)
        cfg = FinetuneConfig(**{"data": str(self.out_dir / "dataset.jsonl"), "model": source,
                                "out_dir": str(self.out_dir / "finetuned"), "max_length": self.model_seq_len,
                                **self.finetune_config})
        job = wait_job(start_job(cfg))
        if job.status != "succeeded":
            return {"status": job.status, "error": job.error, "job": job.id}
        self.model, self.tokenizer = models.load(cfg.out_dir)
        return {"status": "succeeded", "job": job.id, "path": cfg.out_dir}

    def sample_model_with_api_calls(self, prompt: str, **config: Any) -> str:
        """Decode with tools: a call starts when " [" is in the top k, the tool runs at "->", decoding resumes."""
        from toolformer_app.decoding import InferenceConfig, run_with_tools

        return run_with_tools(self.model, self.tokenizer, prompt, self.registry, InferenceConfig(**config)).text
