"""Zero-shot evaluation in three modes (paper, section 4): base model, Toolformer, Toolformer (disabled).

- ``base``: the base model (for a finetune, the ``base_model`` of its toolformer_card.json) with
  plain greedy decoding: no tools, nothing masked.
- ``tools``: the model with tools, greedy, a call starting whenever " [" is among the top k (default
  10) next tokens, at most one call (``decoding.generate_with_tools``). The tools allowed follow the
  suite (``suite_lib.TOOLS_BY_KIND``: no WikiSearch for facts); Calendar reads the suite's fixed clock.
- ``disabled``: the same model with p(" [") = 0.

Decoding stops as soon as the score of a prediction is decided (``scoring.decided``), or after
``max_new_tokens`` tokens chosen by the model: stopping early never changes a score, and keeps CPU
runs short. A suite's items are decoded ``batch_size`` at a time in each mode (``decoding.BatchDecoder``,
each row with its own calls and stops); in float32 the outputs equal one item at a time (batch_size=1).
Perplexity is measured on held-out wiki extracts (first ``ppl_tokens`` tokens of each): the base model
plainly, the model with " [" masked (its probability renormalised away).

This module loads the models and tools and runs the modes (``evaluate``). Its parts live beside it:
``config`` (``EvalConfig``), ``predict`` (decoding one item), ``perplexity`` and ``report`` (scores,
summaries, results files, tables). Their public names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolformer_app.calls import api_token_id
from toolformer_app.config import data_dir
from toolformer_app.evaluation import scoring
from toolformer_app.evaluation import suites as suite_lib
from toolformer_app.evaluation.base_cache import BaseCache, fingerprint
from toolformer_app.evaluation.config import MODES, EvalConfig, EvaluationCancelled, Progress
from toolformer_app.evaluation.perplexity import perplexity, perplexity_entries
from toolformer_app.evaluation.predict import (
    Prediction,
    plain_greedy,
    plain_greedy_steps,
    predict_batch,
    predict_with_tools,
)
from toolformer_app.evaluation.report import (
    TOOL_COLUMNS,
    WRONG_TOOLS,
    format_table,
    result_used,
    score_prediction,
    summarize,
    sweep_rows,
    write_outputs,
    wrong_tool_rate,
)
from toolformer_app.evaluation.suites import Item, SuiteError

# The UI, the CLI and users read the evaluation through this module: its parts' names stay importable here.
__all__ = [
    "MODES", "TOOL_COLUMNS", "WRONG_TOOLS", "EvalConfig", "EvaluationCancelled", "Item", "Prediction", "Progress",
    "SuiteError", "base_model_name", "build_tools", "evaluate", "format_table", "load_accuracy_suites", "perplexity",
    "plain_greedy", "plain_greedy_steps", "predict_batch", "predict_with_tools", "result_used", "score_prediction",
    "summarize", "sweep_rows", "wrong_tool_rate", "write_outputs",
]


# -- loading ----------------------------------------------------------------------------------------
def base_model_name(model_name: str | None) -> str | None:
    """The base model recorded in a finetune's toolformer_card.json ("base_model"), else ``model_name``."""
    from toolformer_app import models

    if not model_name:
        return model_name
    path = models.shipped_adapter(model_name) or Path(model_name).expanduser()  # a shipped preset has a card too
    card = path / models.CARD_NAME if path.is_dir() else None
    if card is None or not card.exists():
        return model_name
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return model_name
    for key in ("base_model", "base_model_source"):
        name = data.get(key)
        if not isinstance(name, str) or not name.strip():
            continue
        if name.startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
            continue  # a base directory that moved or was deleted
        try:
            models.resolve(name)
            return name
        except Exception:  # ModelLoadError, or the hub refusing the name offline
            continue
    return model_name


def build_tools(clock: datetime.date, reader_model: str | None = None) -> dict[str, Any]:
    """The five tools, and the user's registered ones (``--tools-from``); Calendar on the fixed ``clock``; QA and
    MT read with ``reader_model`` (the base)."""
    from toolformer_app.tools import get_tool, user_tool_names

    kwargs: dict[str, dict[str, Any]] = {"Calendar": {"clock": lambda: clock}, "QA": {"model_name": reader_model},
                                         "MT": {"model_name": reader_model}}
    names = (*suite_lib.ALL_TOOLS, *user_tool_names())
    return {name: get_tool(name, **kwargs.get(name, {})) for name in names}


def load_accuracy_suites(cfg: EvalConfig) -> list[tuple[str, list[Item]]]:
    """(name, items) of the selected built-in suites and custom files: ``cfg.limit`` items after ``cfg.offset``."""
    end = cfg.offset + cfg.limit if cfg.limit else None
    chosen: list[tuple[str, list[Item]]] = [
        (name, suite_lib.plain_items(end) if name == suite_lib.PLAIN else suite_lib.load_suite(name))
        for name in cfg.suites if name != suite_lib.PERPLEXITY]
    taken = {name for name, _ in chosen} | {suite_lib.PERPLEXITY}
    for file in cfg.suite_files:
        items = suite_lib.load_suite_file(file)
        name = Path(file).stem
        while name in taken:
            name += "_"
        taken.add(name)
        chosen.append((name, items))
    cut = [(name, items[cfg.offset:end]) for name, items in chosen]
    empty = [name for name, items in cut if not items]
    if empty:
        raise SuiteError(f"--offset {cfg.offset} leaves no item in {empty[0]}")
    return cut



def _base_cache(model: Any) -> BaseCache | None:
    """The data dir's cache for this base, or None where batched decoding may round differently (not float32)."""
    import torch

    if any(p.dtype != torch.float32 for p in model.parameters()):
        return None
    return BaseCache(data_dir() / "eval_cache.sqlite", fingerprint(model))


@dataclass
class _Models:
    """The models of one run: the one evaluated, the base it is compared with, and the model QA and MT read with."""

    label: str
    base_label: str
    tuned: tuple[Any, Any]  # (model, tokenizer)
    base: tuple[Any, Any]
    reader: str | None
    base_by_name: bool  # loaded here by name: its weights alone decide its outputs, so the base cache may serve it


def _load_models(model_name: str | None, model: Any, tokenizer: Any, base: tuple[Any, Any] | None,
                 base_model: str | None, device: str | None) -> _Models:
    from toolformer_app import models

    label = model_name or ("custom model" if model is not None else models.model_id())
    # A model object passed in (a test's scripted wrapper) may decide its outputs otherwise: never cached.
    base_by_name = model is None
    if model is None:
        model, tokenizer = models.load(model_name, device=device)
    reader: str | None = model_name  # QA and MT read with the base model (the tools are not finetuned)
    if base is not None:
        base_label = base_model or "custom base model"
        reader = base_model
        base_by_name = False
    else:
        base_label = base_model or base_model_name(model_name) or label
        if base_label not in (label, model_name):
            base = models.load(base_label, device=device)
            reader = base_label
            base_by_name = True
        else:
            base = (model, tokenizer)
    return _Models(label, base_label, (model, tokenizer), base, reader, base_by_name)


# -- running the modes ------------------------------------------------------------------------------
def _task(name: str, mode: str, k: int, threshold: float | None) -> str:
    """The progress label: suite/mode, with the k or the threshold that "tools" calls at."""
    if mode != "tools":
        return f"{name}/{mode}"
    return f"{name}/{mode}/k={k}" if threshold is None else f"{name}/{mode}/p>={threshold:g}"


def _decode(jobs: Sequence[tuple[Any, ...]], pair: tuple[Any, Any], batch_size: int,
            decoded: Callable[[int, Prediction], None]) -> None:
    """Decode ``predict_batch``'s jobs, together or one at a time; ``decoded(index, prediction)`` as each ends."""
    if batch_size > 1:
        predict_batch(jobs, pair[0], pair[1], batch_size, decoded)
        return
    for j, job in enumerate(jobs):
        if job[0] == "plain":
            text = plain_greedy(pair[0], pair[1], *job[1:])
            decoded(j, Prediction(text, text))
        else:
            decoded(j, predict_with_tools(pair[0], pair[1], *job[1:]))


@dataclass
class _Run:
    """One run's models, tools and base cache, and what it has measured so far."""

    cfg: EvalConfig
    tuned: tuple[Any, Any]
    base: tuple[Any, Any]
    registry: dict[str, Any]
    cache: BaseCache | None
    bars: bool  # tqdm bars
    callback: Progress | None
    timing: dict[str, float] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)  # the predictions.jsonl rows

    def suite(self, name: str, items: list[Item], results: dict[str, Any]) -> None:
        """One accuracy suite in every mode, then its sweeps over k and over call thresholds (Table 9)."""
        cfg = self.cfg
        entry = results["suites"][name] = {}
        for mode in cfg.modes:
            if name == suite_lib.PLAIN and mode != "tools":
                continue  # `plain` has no answer, only its call rate, and neither mode can call: nothing to count
            entry[mode] = self.mode(name, items, mode, cfg.top_k_call if mode == "tools" else 0,
                                    cfg.call_threshold if mode == "tools" else None)
        if cfg.ks:
            sweep = results["sweep"][name] = {}
            for k in cfg.ks:
                if k == cfg.top_k_call and "tools" in entry:
                    sweep[str(k)] = entry["tools"]
                elif k == 0 and "disabled" in entry:  # k=0 never calls and masks " [": the same decoding
                    sweep[str(k)] = entry["disabled"]
                else:
                    sweep[str(k)] = self.mode(name, items, "tools", k)
        if cfg.thresholds:
            by_threshold = results.setdefault("threshold_sweep", {})[name] = {}
            for t in cfg.thresholds:
                by_threshold[f"{t:g}"] = self.mode(name, items, "tools", cfg.top_k_call, t)

    def jobs(self, items: list[Item], mode: str, k: int, threshold: float | None) -> list[tuple[Any, ...]]:
        """``predict_batch``'s job for each item in ``mode``."""
        from toolformer_app.decoding import InferenceConfig

        cfg = self.cfg
        jobs: list[tuple[Any, ...]] = []
        for item in items:
            # stop once the score is decided (plain continuations run their whole budget)
            stop = None if item.kind == suite_lib.PLAIN else functools.partial(scoring.decided, item.answer_type)
            if mode == "base":
                jobs.append(("plain", item.prompt, cfg.max_new_tokens, stop))
            else:
                calibrated = mode == "tools" and threshold is not None and threshold == cfg.call_threshold
                icfg = InferenceConfig(max_new_tokens=cfg.max_new_tokens, top_k_call=k, max_calls=cfg.max_calls,
                                       disabled=mode == "disabled", tools=suite_lib.TOOLS_BY_KIND[item.kind],
                                       constrain_names=cfg.constrain_names,
                                       call_threshold=threshold if mode == "tools" else None,
                                       tool_thresholds=cfg.tool_thresholds if calibrated else None,
                                       clause_inputs=cfg.clause_inputs or ())
                jobs.append(("tools", item.prompt, self.registry, icfg, stop))
        return jobs

    def mode(self, name: str, items: list[Item], mode: str, k: int, threshold: float | None = None) -> dict[str, Any]:
        """One suite in one mode: decoded (the base's rows from the cache where it holds them), scored, summed up."""
        from tqdm import tqdm

        cfg, cache = self.cfg, self.cache
        task = _task(name, mode, k, threshold)
        t0 = time.perf_counter()
        bar = tqdm(total=len(items), desc=task, unit="ex", disable=None if self.bars else True, leave=False)
        by_index: dict[int, dict[str, Any]] = {}

        def finished(i: int, pred: Prediction) -> None:
            by_index[i] = score_prediction(items[i], pred)
            bar.update(1)
            bar.set_postfix(acc=f"{sum(r['correct'] for r in by_index.values()) / len(by_index):.2f}")
            if self.callback:
                self.callback(task, len(by_index), len(items))

        jobs = self.jobs(items, mode, k, threshold)
        keys = [cache.key("plain", it.prompt, cfg.max_new_tokens, it.kind, it.answer_type) for it in items] \
            if cache is not None and mode == "base" else []
        kept = cache.get_many(keys) if keys else {}
        todo = [i for i in range(len(jobs)) if not keys or keys[i] not in kept]
        for i, key in enumerate(keys):
            if key in kept:
                finished(i, Prediction(**kept[key]))
        fresh: dict[str, Any] = {}

        def decoded(j: int, pred: Prediction) -> None:
            finished(todo[j], pred)
            if keys:
                fresh[keys[todo[j]]] = dataclasses.asdict(pred)

        _decode([jobs[i] for i in todo], self.base if mode == "base" else self.tuned, cfg.batch_size, decoded)
        if cache is not None:
            cache.put_many(fresh)
        rows = [by_index[i] for i in range(len(items))]
        for row in rows:
            self.predictions.append({"suite": name, "mode": mode, "k": k if mode == "tools" else None, **row})
        bar.close()
        self.timing[task] = round(time.perf_counter() - t0, 2)
        summary = summarize(rows)
        if name == suite_lib.PLAIN:
            summary.update(correct=None, accuracy=None, ci_low=None, ci_high=None)
        if mode == "tools":
            summary["k"] = k
            if threshold is not None:
                summary["call_threshold"] = threshold
        return summary


# -- the run ----------------------------------------------------------------------------------------
def card_settings(cfg: EvalConfig, model_name: str | None) -> None:
    """Fill the decoding settings left to the model's card (``models.card_inference``): the clause-input tools,
    and with a call threshold, the per-tool thresholds. A model given as an object has no card: the paper's."""
    from toolformer_app import models

    card = models.card_inference(model_name) if isinstance(model_name, str) else {}
    if cfg.clause_inputs is None:
        cfg.clause_inputs = tuple(card.get("clause_inputs") or ())
    if cfg.tool_thresholds is None and cfg.call_threshold is not None:
        cfg.tool_thresholds = card.get("tool_thresholds") or None


def evaluate(
    model_name: str | None = None,
    suites: Sequence[str] | str | None = None,
    limit: int | None = None,
    *,
    config: EvalConfig | None = None,
    suite_files: Sequence[str] = (),
    model: Any = None,
    tokenizer: Any = None,
    base: tuple[Any, Any] | None = None,
    base_model: str | None = None,
    tools: Mapping[str, Any] | None = None,
    device: str | None = None,
    out_dir: str | Path | None = None,
    progress: bool | Progress = True,
) -> dict[str, Any]:
    """Evaluate ``model_name`` (or ``model``/``tokenizer`` given directly) on the suites, in every mode.

    ``base`` / ``base_model``: the base model (default: the card's base_model, else the model itself).
    ``tools``: a registry to use instead of the five default tools. ``progress``: True for tqdm bars,
    or a callback ``(task, done, total)``, called after every item, which may raise EvaluationCancelled
    to stop the run there. Returns the results dict (see ``results.json``); with
    ``out_dir`` also writes results.json, predictions.jsonl and table.md there. Raises SuiteError or
    models.ModelLoadError on bad input.
    """
    import torch

    cfg = dataclasses.replace(config) if config else EvalConfig()
    if suites is not None:
        cfg.suites = tuple(s.strip() for s in (suites.split(",") if isinstance(suites, str) else suites) if s.strip())
    if suite_files:
        cfg.suite_files = tuple(suite_files)
    if limit is not None:
        cfg.limit = limit
    cfg.validate()
    card_settings(cfg, model_name)
    accuracy_suites = load_accuracy_suites(cfg)  # bad suites fail before any model is loaded
    end = cfg.offset + cfg.limit if cfg.limit else None
    held_out = suite_lib.held_out_texts(end)[cfg.offset:] if suite_lib.PERPLEXITY in cfg.suites else []

    t_start = time.perf_counter()
    loaded = _load_models(model_name, model, tokenizer, base, base_model, device)
    registry = dict(tools) if tools is not None else build_tools(cfg.clock, loaded.reader)
    cache = _base_cache(loaded.base[0]) if cfg.base_cache and loaded.base_by_name and "base" in cfg.modes else None
    api_id = api_token_id(loaded.tuned[1])
    torch.manual_seed(cfg.seed)

    run = _Run(cfg, loaded.tuned, loaded.base, registry, cache, bars=progress is True,
               callback=progress if callable(progress) else None)
    results: dict[str, Any] = {
        "model": loaded.label, "base_model": loaded.base_label, "clock": cfg.clock.isoformat(),
        "suites_version": suite_lib.SUITE_VERSION, "config": cfg.to_dict(), "suites": {}, "sweep": {},
    }
    for name, items in accuracy_suites:
        run.suite(name, items, results)
    if held_out:
        results["suites"][suite_lib.PERPLEXITY] = perplexity_entries(
            cfg, held_out, loaded.tuned, loaded.base, api_id, run.bars, run.callback, run.timing, cache)

    run.timing["total"] = round(time.perf_counter() - t_start, 2)
    results["timing_s"] = run.timing
    if cache is not None:
        results["base_cache"] = {"hits": cache.hits, "misses": cache.misses}
    if out_dir is not None:
        write_outputs(out_dir, results, run.predictions)
    return results
