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
each row with its own calls and stops); in float32 the outputs equal one item at a time (batch_size=1). Perplexity is measured on held-out wiki extracts (first ``ppl_tokens`` tokens of each):
the base model plainly, the model with " [" masked (its probability renormalised away).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolformer_app.calls import api_token_id
from toolformer_app.config import data_dir
from toolformer_app.evaluation import scoring
from toolformer_app.evaluation import suites as suite_lib
from toolformer_app.evaluation.base_cache import BaseCache, fingerprint
from toolformer_app.evaluation.suites import Item, SuiteError

if TYPE_CHECKING:
    from toolformer_app.decoding import Steps

MODES = ("base", "tools", "disabled")
TOOL_COLUMNS = suite_lib.ALL_TOOLS
Progress = Callable[[str, int, int], None]  # (task, done, total), e.g. for a UI progress bar


class EvaluationCancelled(Exception):
    """Raised by a progress callback to stop a run between items (the UI's Stop); nothing is written."""


def _paper_k() -> int:
    from toolformer_app.decoding import InferenceConfig  # the paper's k = 10, defined there once

    return InferenceConfig().top_k_call


@dataclass
class EvalConfig:
    """What one evaluation run does. The defaults follow the paper (k=10, one call, greedy)."""

    suites: tuple[str, ...] = ("math", "facts", "dates", "perplexity")
    suite_files: tuple[str, ...] = ()  # custom JSONL suites, named by their file stem
    limit: int | None = None  # the first N items of each suite (and N held-out texts), after ``offset``
    offset: int = 0  # items skipped first: DEV_OFFSET gives the dev split that sweeps choose on
    modes: tuple[str, ...] = MODES
    top_k_call: int = field(default_factory=_paper_k)  # "tools" mode: call when " [" is in the top k
    max_calls: int = 1
    ks: tuple[int, ...] = ()  # Table 9 sweep over k, on every accuracy suite
    max_new_tokens: int = 32
    ppl_tokens: int = 128  # tokens per held-out extract (a fixed budget)
    ppl_batch_size: int = 8
    seed: int = 0
    clock: datetime.date = suite_lib.CLOCK  # "today" for the dates suite and the Calendar tool
    constrain_names: bool = True  # only the suite's allowed tools can be written (False: free names)
    call_threshold: float | None = None  # "tools" mode calls when p(" [") reaches this, instead of top-k
    thresholds: tuple[float, ...] = ()  # Table 9 analogue: a sweep over call thresholds
    batch_size: int = 16  # items decoded together in each mode (1: one at a time; same outputs in float32)
    base_cache: bool = True  # reuse the base mode's rows from earlier runs (base_cache.py; float32 bases by name)

    def validate(self) -> None:
        known = suite_lib.BUILTIN + (suite_lib.FACTS_PLAIN, suite_lib.PERPLEXITY, suite_lib.PLAIN)
        unknown = [s for s in self.suites if s not in known]
        if unknown:
            raise SuiteError(f"unknown suite {unknown[0]!r} (expected {', '.join(known)})")
        bad_modes = [m for m in self.modes if m not in MODES]
        if bad_modes:
            raise SuiteError(f"unknown mode {bad_modes[0]!r} (expected {', '.join(MODES)})")
        if not self.suites and not self.suite_files:
            raise SuiteError("no suite selected")
        if self.limit is not None and self.limit < 1:
            raise SuiteError("--limit must be at least 1")
        if self.offset < 0:
            raise SuiteError("--offset must be at least 0")
        if any(k < 0 for k in self.ks) or self.top_k_call < 0:
            raise SuiteError("k must be >= 0")
        if any(not 0 <= t <= 1 for t in (*self.thresholds, self.call_threshold or 0.0)):
            raise SuiteError("call thresholds must be in [0, 1]")
        if self.batch_size < 1:
            raise SuiteError("--batch-size must be at least 1")
        if self.max_new_tokens < 1 or self.ppl_tokens < 2:
            raise SuiteError("max_new_tokens must be >= 1 and ppl_tokens >= 2")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["clock"] = self.clock.isoformat()
        return d


# -- decoding ---------------------------------------------------------------------------------------
def plain_greedy_steps(tok: Any, prompt: str, max_new_tokens: int, eos: Sequence[int],
                       stop: Callable[[str], bool] | None = None) -> Steps:
    """Plain greedy continuation as a decoding coroutine (no tools, no mask): ``Feed`` requests, then one
    TextChunk with the whole text. Stops at eos, after ``max_new_tokens`` tokens, or once ``stop(text)``."""
    from toolformer_app.decoding import Feed, TextChunk

    feed: list[int] = tok.encode(prompt)
    out: list[int] = []
    for _ in range(max_new_tokens):
        logits = yield Feed(feed)
        nxt = int(logits.argmax())
        if nxt in eos:
            break
        out.append(nxt)
        feed = [nxt]
        if stop is not None and stop(tok.decode(out, skip_special_tokens=True)):
            break
    yield TextChunk(tok.decode(out, skip_special_tokens=True))


def plain_greedy(model: Any, tok: Any, prompt: str, max_new_tokens: int,
                 stop: Callable[[str], bool] | None = None) -> str:
    """Plain greedy continuation (the base model: no tools, no mask), with the KV cache.

    Stops at eos, after ``max_new_tokens`` tokens, or once ``stop(text so far)`` holds.
    """
    from toolformer_app.decoding import drive, eos_token_ids

    steps = plain_greedy_steps(tok, prompt, max_new_tokens, eos_token_ids(model, tok), stop)
    return "".join(event.text for event in drive(model, steps))


@dataclass
class Prediction:
    """One example in one mode: the text as generated (calls inline), without calls, and the calls."""

    output: str
    prediction: str
    calls: list[dict[str, Any]] = field(default_factory=list)


class _Collector:
    """Builds a Prediction from a generation's events; ``add`` says when the score is decided (stop there)."""

    def __init__(self, stop: Callable[[str], bool] | None = None):
        self.stop = stop
        self.parts: list[str] = []
        self.plain: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def add(self, event: Any) -> bool:
        from toolformer_app.decoding import CallExecuted, TextChunk

        if isinstance(event, TextChunk):
            self.parts.append(event.text)
            if not event.in_call:
                self.plain.append(event.text)
                return self.stop is not None and self.stop("".join(self.plain))
        elif isinstance(event, CallExecuted):
            self.calls.append({"tool": event.tool, "input": event.input, "output": event.output, "ok": event.ok,
                               "reason": event.reason, "text": event.text})
        return False

    def prediction(self) -> Prediction:
        return Prediction("".join(self.parts), "".join(self.plain), self.calls)


def predict_with_tools(model: Any, tok: Any, prompt: str, tools: Mapping[str, Any], config: Any,
                       stop: Callable[[str], bool] | None = None) -> Prediction:
    """Decode with ``decoding.generate_with_tools``; the prediction is the text outside calls."""
    from toolformer_app.decoding import generate_with_tools

    collector = _Collector(stop)
    events = generate_with_tools(model, tok, prompt, tools, config)
    try:
        for event in events:
            if collector.add(event):
                break
    finally:
        events.close()  # type: ignore[attr-defined]  # a generator: stopping early is fine
    return collector.prediction()


def predict_batch(jobs: Sequence[tuple[Any, ...]], model: Any, tok: Any, batch_size: int,
                  on_done: Callable[[int, Prediction], None] | None = None) -> list[Prediction]:
    """Decode many items together (``decoding.BatchDecoder``), ``batch_size`` rows at a time.

    A job is ``("plain", prompt, max_new_tokens, stop)`` (``plain_greedy``) or ``("tools", prompt, tools,
    InferenceConfig, stop)`` (``predict_with_tools``); each gives what its batch-1 function gives (float32).
    ``on_done(index, prediction)`` is called as each item ends, in the order they end.
    """
    from toolformer_app.decoding import eos_token_ids
    from toolformer_app.decoding.batch import BatchDecoder

    decoder = BatchDecoder(model, tok, max_rows=batch_size)
    eos = eos_token_ids(model, tok)
    collectors: dict[int, _Collector] = {}
    index: dict[int, int] = {}
    for i, job in enumerate(jobs):
        if job[0] == "plain":
            _, prompt, max_new_tokens, stop = job
            collector = _Collector()  # the coroutine stops itself; its one chunk is the whole text
            rid = decoder.submit_steps(plain_greedy_steps(tok, prompt, max_new_tokens, eos, stop), collector.add)
        else:
            _, prompt, tools, config, stop = job
            collector = _Collector(stop)
            rid = decoder.submit(prompt, tools, config, sink=collector.add)
        collectors[rid], index[rid] = collector, i
    out: list[Prediction | None] = [None] * len(jobs)
    pending = set(collectors)
    while pending:
        decoder.step()
        for rid in sorted(r for r in pending if r not in decoder.by_id):
            pending.discard(rid)
            out[index[rid]] = collectors[rid].prediction()
            if on_done is not None:
                on_done(index[rid], out[index[rid]])  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def _canonical_tool(name: str) -> str:
    low = name.lower()
    return next((t for t in TOOL_COLUMNS if t.lower() == low), "other")


def result_used(atype: str, output: str | None, prediction: str) -> bool | None:
    """Whether the prediction gives what the tool returned (None when that cannot be told)."""
    if not output:
        return None
    if atype == "number":
        value = scoring.first_number(output)
        return None if value is None else scoring.numbers_match(scoring.first_number(prediction), value)
    if atype in ("weekday", "month"):
        got = scoring.extract(atype, output)
        return None if got is None else scoring.extract(atype, prediction) == got
    if atype == "date":
        got = scoring.first_date(output)
        if got is None:
            return None
        pred = scoring.first_date(prediction)
        return pred is not None and pred[1:] == got[1:] and (pred[0] is None or got[0] is None or pred[0] == got[0])
    if len(output.split()) > scoring.FIRST_WORDS:  # a snippet: "copied" is not defined
        return None
    return scoring.in_first_words(output, prediction)


def score_prediction(item: Item, pred: Prediction) -> dict[str, Any]:
    """The predictions.jsonl row (without suite/mode): the extraction, the score, the calls and why."""
    if item.kind == suite_lib.PLAIN:  # no answer: only the calls count
        return {"id": item.id, "kind": item.kind, "answer_type": None, "prompt": item.prompt, "answers": [],
                "output": pred.output, "prediction": pred.prediction, "extracted": None, "correct": False,
                "calls": pred.calls}
    atype = item.answer_type
    row: dict[str, Any] = {
        "id": item.id, "kind": item.kind, "answer_type": atype, "prompt": item.prompt, "answers": list(item.answers),
        "output": pred.output, "prediction": pred.prediction, "extracted": scoring.extract(atype, pred.prediction),
        "correct": scoring.is_correct(atype, item.answers, pred.prediction), "calls": pred.calls,
    }
    if pred.calls:
        call = pred.calls[0]
        row["call_result_correct"] = bool(call["output"]) and scoring.is_correct(atype, item.answers, call["output"])
        row["call_result_used"] = result_used(atype, call["output"], pred.prediction)
    return row


# -- aggregation ------------------------------------------------------------------------------------
def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """n, accuracy, 95% Wilson CI, call rate per tool, and why calls did or did not help."""
    n = len(rows)
    correct = sum(bool(r["correct"]) for r in rows)
    low, high = scoring.wilson_interval(correct, n)
    rate: dict[str, float] = {}
    counts = {t: 0 for t in (*TOOL_COLUMNS, "other")}
    for r in rows:
        for tool in {_canonical_tool(c["tool"]) for c in r["calls"]}:
            counts[tool] += 1
    for t in (*TOOL_COLUMNS, "other"):  # other: an unknown tool name or a malformed call ("[country]")
        rate[t] = counts[t] / n if n else 0.0
    called = [r for r in rows if r["calls"]]
    rate["any"] = len(called) / n if n else 0.0
    used = [r["call_result_used"] for r in called if r.get("call_result_used") is not None]
    without = [r for r in rows if not r["calls"]]
    diagnostics = {
        "with_call": len(called),
        "call_ok": sum(any(c["ok"] for c in r["calls"]) for r in called),
        "call_result_correct": sum(bool(r.get("call_result_correct")) for r in called),
        "call_result_used": sum(bool(u) for u in used),
        "call_result_used_known": len(used),
        "correct_with_call": sum(bool(r["correct"]) for r in called),
        "correct_without_call": sum(bool(r["correct"]) for r in without),
    }
    return {"n": n, "correct": correct, "accuracy": correct / n if n else None, "ci_low": low if n else None,
            "ci_high": high if n else None, "call_rate": rate, "perplexity": None, "diagnostics": diagnostics}


# -- perplexity -------------------------------------------------------------------------------------
def perplexity(model: Any, tok: Any, texts: Sequence[str], max_tokens: int = 128, batch_size: int = 8,
               masked_token_id: int | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Token perplexity of ``texts`` (each cut to its first ``max_tokens`` tokens; the first token unscored).

    With ``masked_token_id`` (the " [" token) it also gives the perplexity with that token's probability
    set to 0 and the rest renormalised, "Toolformer (disabled)"; where the text itself holds that token,
    the unmasked probability is used so the perplexity stays finite.
    """
    import torch

    from toolformer_app.models.forward import logits as _logits

    device = getattr(model, "device", None) or next(model.parameters()).device
    encoded = [ids[:max_tokens] for ids in (tok.encode(t) for t in texts)]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    nll = nll_masked = 0.0
    count = 0
    with torch.inference_mode():
        for s in range(0, len(encoded), batch_size):
            batch = encoded[s : s + batch_size]
            width = max(len(ids) for ids in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, seq in enumerate(batch):  # right padding, mask from lengths (SmolLM2's pad is its eos)
                ids[b, : len(seq)] = torch.tensor(seq)
                mask[b, : len(seq)] = 1
            logits = _logits(model, ids.to(device), mask.to(device)).float()[:, :-1]
            target = ids[:, 1:].to(logits.device)
            valid = mask[:, 1:].bool().to(logits.device)
            logp = torch.log_softmax(logits, -1)
            lp = logp.gather(-1, target[..., None])[..., 0]
            nll -= float(lp[valid].double().sum())
            if masked_token_id is not None:
                # log p'(x) = log p(x) - log(1 - p(" [")) for x != " ["
                p_api = logp[..., masked_token_id].exp().clamp(max=1 - 1e-6)
                lp_masked = torch.where(target == masked_token_id, lp, lp - torch.log1p(-p_api))
                nll_masked -= float(lp_masked[valid].double().sum())
            count += int(valid.sum())
            if progress is not None:
                progress(len(batch))
    result: dict[str, Any] = {"texts": len(encoded), "tokens": count,
                              "perplexity": math.exp(nll / count) if count else None}
    if masked_token_id is not None:
        result["perplexity_masked"] = math.exp(nll_masked / count) if count else None
    return result


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


# -- the run ----------------------------------------------------------------------------------------
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

    from toolformer_app import models
    from toolformer_app.decoding import InferenceConfig

    cfg = dataclasses.replace(config) if config else EvalConfig()
    if suites is not None:
        cfg.suites = tuple(s.strip() for s in (suites.split(",") if isinstance(suites, str) else suites) if s.strip())
    if suite_files:
        cfg.suite_files = tuple(suite_files)
    if limit is not None:
        cfg.limit = limit
    cfg.validate()
    accuracy_suites = load_accuracy_suites(cfg)  # bad suites fail before any model is loaded
    end = cfg.offset + cfg.limit if cfg.limit else None
    held_out = suite_lib.held_out_texts(end)[cfg.offset:] if suite_lib.PERPLEXITY in cfg.suites else []

    t_start = time.perf_counter()
    label = model_name or ("custom model" if model is not None else models.model_id())
    # A base loaded here by name can reuse its rows from earlier runs (base_cache.py): its weights decide its
    # outputs. A model object passed in (a test's scripted wrapper) may decide otherwise, so it never does.
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
    registry = dict(tools) if tools is not None else build_tools(cfg.clock, reader)
    cache = _base_cache(base[0]) if cfg.base_cache and base_by_name and "base" in cfg.modes else None
    api_id = api_token_id(tokenizer)
    torch.manual_seed(cfg.seed)

    bars = progress is True
    callback = progress if callable(progress) else None
    timing: dict[str, float] = {}
    predictions: list[dict[str, Any]] = []
    results: dict[str, Any] = {
        "model": label, "base_model": base_label, "clock": cfg.clock.isoformat(),
        "suites_version": suite_lib.SUITE_VERSION, "config": cfg.to_dict(), "suites": {}, "sweep": {},
    }

    def run_mode(name: str, items: list[Item], mode: str, k: int, threshold: float | None = None) -> dict[str, Any]:
        from tqdm import tqdm

        task = f"{name}/{mode}" + (f"/k={k}" if mode == "tools" and threshold is None else "") + \
            (f"/p>={threshold:g}" if mode == "tools" and threshold is not None else "")
        t0 = time.perf_counter()
        bar = tqdm(total=len(items), desc=task, unit="ex", disable=None if bars else True, leave=False)
        by_index: dict[int, dict[str, Any]] = {}

        def finished(i: int, pred: Prediction) -> None:
            by_index[i] = score_prediction(items[i], pred)
            bar.update(1)
            bar.set_postfix(acc=f"{sum(r['correct'] for r in by_index.values()) / len(by_index):.2f}")
            if callback:
                callback(task, len(by_index), len(items))

        jobs: list[tuple[Any, ...]] = []
        for item in items:
            # stop once the score is decided (plain continuations run their whole budget)
            stop = None if item.kind == suite_lib.PLAIN else functools.partial(scoring.decided, item.answer_type)
            if mode == "base":
                jobs.append(("plain", item.prompt, cfg.max_new_tokens, stop))
            else:
                icfg = InferenceConfig(max_new_tokens=cfg.max_new_tokens, top_k_call=k, max_calls=cfg.max_calls,
                                       disabled=mode == "disabled", tools=suite_lib.TOOLS_BY_KIND[item.kind],
                                       constrain_names=cfg.constrain_names,
                                       call_threshold=threshold if mode == "tools" else None)
                jobs.append(("tools", item.prompt, registry, icfg, stop))
        pair = base if mode == "base" else (model, tokenizer)
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

        if cfg.batch_size > 1:
            predict_batch([jobs[i] for i in todo], pair[0], pair[1], cfg.batch_size, decoded)
        else:
            for j, i in enumerate(todo):
                job = jobs[i]
                if job[0] == "plain":
                    text = plain_greedy(pair[0], pair[1], *job[1:])
                    decoded(j, Prediction(text, text))
                else:
                    decoded(j, predict_with_tools(pair[0], pair[1], *job[1:]))
        if cache is not None:
            cache.put_many(fresh)
        rows = [by_index[i] for i in range(len(items))]
        for row in rows:
            predictions.append({"suite": name, "mode": mode, "k": k if mode == "tools" else None, **row})
        bar.close()
        timing[task] = round(time.perf_counter() - t0, 2)
        summary = summarize(rows)
        if name == suite_lib.PLAIN:
            summary.update(correct=None, accuracy=None, ci_low=None, ci_high=None)
        if mode == "tools":
            summary["k"] = k
            if threshold is not None:
                summary["call_threshold"] = threshold
        return summary

    for name, items in accuracy_suites:
        entry = results["suites"][name] = {}
        for mode in cfg.modes:
            if name == suite_lib.PLAIN and mode != "tools":
                continue  # `plain` has no answer, only its call rate, and neither mode can call: nothing to count
            entry[mode] = run_mode(name, items, mode, cfg.top_k_call if mode == "tools" else 0,
                                   cfg.call_threshold if mode == "tools" else None)
        if cfg.ks:
            sweep = results["sweep"][name] = {}
            for k in cfg.ks:
                if k == cfg.top_k_call and "tools" in entry:
                    sweep[str(k)] = entry["tools"]
                elif k == 0 and "disabled" in entry:  # k=0 never calls and masks " [": the same decoding
                    sweep[str(k)] = entry["disabled"]
                else:
                    sweep[str(k)] = run_mode(name, items, "tools", k)
        if cfg.thresholds:
            by_threshold = results.setdefault("threshold_sweep", {})[name] = {}
            for t in cfg.thresholds:
                by_threshold[f"{t:g}"] = run_mode(name, items, "tools", cfg.top_k_call, t)

    if held_out:
        results["suites"][suite_lib.PERPLEXITY] = _perplexity_entries(
            cfg, held_out, (model, tokenizer), base, api_id, bars, callback, timing, cache)

    timing["total"] = round(time.perf_counter() - t_start, 2)
    results["timing_s"] = timing
    if cache is not None:
        results["base_cache"] = {"hits": cache.hits, "misses": cache.misses}
    if out_dir is not None:
        write_outputs(out_dir, results, predictions)
    return results


def _perplexity_entries(cfg: EvalConfig, texts: list[str], tuned: tuple[Any, Any], base: tuple[Any, Any],
                        api_id: int, bars: bool, callback: Progress | None,
                        timing: dict[str, float], cache: BaseCache | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    def measure(pair: tuple[Any, Any], task: str, masked: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        bar = tqdm(total=len(texts), desc=task, unit="text", disable=None if bars else True, leave=False)
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n)
            if callback:
                callback(task, done, len(texts))

        res = perplexity(pair[0], pair[1], texts, cfg.ppl_tokens, cfg.ppl_batch_size,
                         api_id if masked else None, step)
        bar.close()
        timing[task] = round(time.perf_counter() - t0, 2)
        return res

    def entry(n: int, ppl: float | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"n": n, "correct": None, "accuracy": None, "ci_low": None, "ci_high": None,
                "call_rate": {t: 0.0 for t in (*TOOL_COLUMNS, "other", "any")}, "perplexity": ppl, **extra}

    def measure_base() -> dict[str, Any]:
        key = cache.key("perplexity", texts, cfg.ppl_tokens, cfg.ppl_batch_size) if cache is not None else ""
        kept = cache.get_many([key]) if cache is not None else {}
        if key in kept:
            timing["perplexity/base"] = 0.0
            return kept[key]
        res = measure(base, "perplexity/base", masked=False)
        if cache is not None:
            cache.put_many({key: res})
        return res

    same = base[0] is tuned[0]
    tuned_res = measure(tuned, "perplexity/disabled", masked=True) if "disabled" in cfg.modes or same else None
    base_res = tuned_res if same and tuned_res else (measure_base() if "base" in cfg.modes else None)
    out: dict[str, Any] = {}
    if "base" in cfg.modes and base_res:
        out["base"] = entry(base_res["texts"], base_res["perplexity"], {"tokens": base_res["tokens"]})
    if "tools" in cfg.modes:  # as in the paper's Table 8: perplexity is measured with tools disabled
        out["tools"] = entry(len(texts), None, {"note": "not defined with tools; see disabled"})
    if "disabled" in cfg.modes and tuned_res:
        out["disabled"] = entry(tuned_res["texts"], tuned_res["perplexity_masked"],
                                {"tokens": tuned_res["tokens"], "perplexity_unmasked": tuned_res["perplexity"]})
    return out


def _base_cache(model: Any) -> BaseCache | None:
    """The data dir's cache for this base, or None where batched decoding may round differently (not float32)."""
    import torch

    if any(p.dtype != torch.float32 for p in model.parameters()):
        return None
    return BaseCache(data_dir() / "eval_cache.sqlite", fingerprint(model))


def write_outputs(out_dir: str | Path, results: dict[str, Any], predictions: Iterable[dict[str, Any]]) -> None:
    """results.json, predictions.jsonl and table.md, each written atomically."""
    from toolformer_app.files import atomic_write_json, atomic_write_jsonl, atomic_write_text

    out = Path(out_dir)
    atomic_write_json(out / "results.json", results)
    atomic_write_jsonl(out / "predictions.jsonl", predictions)
    atomic_write_text(out / "table.md", format_table(results) + "\n")


# -- the table --------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _acc(e: dict[str, Any] | None) -> str:
    if not e or e.get("accuracy") is None:
        return "—"
    return f"{_pct(e['accuracy'])} [{_pct(e['ci_low'])}, {_pct(e['ci_high'])}]"


# Tools that cannot help on a suite; WikiSearch is also disallowed on facts (paper, 4.2.1), so any call to
# it there is wrong by definition (with constrained names it cannot be written).
WRONG_TOOLS = {"facts": ("Calculator", "Calendar", "WikiSearch"), suite_lib.FACTS_PLAIN: ("Calculator", "Calendar",
               "WikiSearch"), "math": ("QA", "WikiSearch")}


def wrong_tool_rate(suite: str, entry: dict[str, Any] | None) -> float | None:
    """Share of a suite's examples that called a tool that cannot help there (one call per example at most)."""
    tools = WRONG_TOOLS.get(suite)
    if not entry or not tools:
        return None
    return sum(entry["call_rate"].get(t, 0.0) for t in tools)


def sweep_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The Table 9 analogue as long rows for a plot: {sweep ("k" or "threshold"), value, suite, metric
    ("accuracy" or "calls"), percent}, from the k sweep and the threshold sweep of one run."""
    rows = []
    for sweep, key in (("k", "sweep"), ("threshold", "threshold_sweep")):
        for suite, by_value in (results.get(key) or {}).items():
            for value, e in by_value.items():
                if e.get("accuracy") is not None:
                    rows.append({"sweep": sweep, "value": float(value), "suite": suite, "metric": "accuracy",
                                 "percent": round(100 * e["accuracy"], 1)})
                rows.append({"sweep": sweep, "value": float(value), "suite": suite, "metric": "calls",
                             "percent": round(100 * e["call_rate"]["any"], 1)})
    return sorted(rows, key=lambda r: (r["sweep"], r["suite"], r["metric"], r["value"]))


def format_table(results: dict[str, Any]) -> str:
    """Markdown tables: accuracy (%, 95% CI) and perplexity per mode; call rates; why calls helped or not."""
    by_suite = results.get("suites", {})
    # a suite with no mode run (``plain`` is decoded with tools only) has no column
    acc_names = [s for s in by_suite if s != suite_lib.PERPLEXITY and by_suite[s]]
    ppl = by_suite.get(suite_lib.PERPLEXITY, {})
    modes = [m for m in MODES if any(m in by_suite[s] for s in by_suite)]
    config = results.get("config", {})
    threshold = config.get("call_threshold")
    tools_label = (f"tools (p(\" [\") >= {threshold:g})" if threshold
                   else f"tools (k={config.get('top_k_call', _paper_k())})")
    labels = {"base": f"base ({results.get('base_model')})", "tools": tools_label, "disabled": "disabled"}
    lines = [f"Model: {results.get('model')}; clock {results.get('clock')}; accuracy in % with 95% Wilson CI.", ""]
    head = ["mode"] + [f"{s} (n={next(iter(by_suite[s].values()))['n']})" for s in acc_names]
    if ppl:
        n_ppl = next(iter(ppl.values()))["n"]
        head.append(f"perplexity ({n_ppl} texts)")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in modes:
        cells = [labels[m]] + [_acc(by_suite[s].get(m)) for s in acc_names]
        if ppl:
            value = (ppl.get(m) or {}).get("perplexity")
            cells.append("—" if value is None else f"{value:.2f}")
        lines.append("| " + " | ".join(cells) + " |")

    if acc_names:
        cols = [*TOOL_COLUMNS, "other", "any"]
        lines += ["", "Share of examples with a call (%; other: an unknown tool or a malformed call):", "",
                  "| suite | mode | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
        for s in acc_names:
            for m in modes:
                e = by_suite[s].get(m)
                if e:
                    lines.append(f"| {s} | {m} | " + " | ".join(_pct(e["call_rate"].get(c, 0.0)) for c in cols) + " |")
        wrong = [(s, wrong_tool_rate(s, by_suite[s].get("tools"))) for s in acc_names if s in WRONG_TOOLS]
        wrong = [(s, r) for s, r in wrong if r is not None]
        if wrong:
            lines += ["", "Wrong-tool rate in tools mode (Calculator, Calendar or the disallowed WikiSearch on facts; "
                      "QA or WikiSearch on math): "
                      + "; ".join(f"{s} {_pct(r)}%" for s, r in wrong)]
        lines += ["", "Calls in tools mode: made, returned a result, result right, result copied into the answer; "
                  "accuracy with and without a call:", "",
                  "| suite | with call | result | result right | result used | acc. with call | acc. without |",
                  "|---|---|---|---|---|---|---|"]
        for s in acc_names:
            e = by_suite[s].get("tools")
            if not e or s == suite_lib.PLAIN:
                continue
            d, n = e["diagnostics"], e["n"]
            w = d["with_call"]
            lines.append(
                f"| {s} | {w}/{n} | {d['call_ok']}/{w} | {d['call_result_correct']}/{w} | "
                f"{d['call_result_used']}/{d['call_result_used_known']} | "
                f"{_pct(d['correct_with_call'] / w) if w else '—'} | "
                f"{_pct(d['correct_without_call'] / (n - w)) if n - w else '—'} |")

    sweep = results.get("sweep") or {}
    if sweep:
        lines += ["", "Effect of k (paper, Table 9): accuracy (%, 95% CI) and share of examples with a call:", "",
                  "| suite | k | accuracy | calls |", "|---|---|---|---|"]
        for s, by_k in sweep.items():
            for kk, e in sorted(by_k.items(), key=lambda kv: int(kv[0])):
                lines.append(f"| {s} | {kk} | {_acc(e)} | {_pct(e['call_rate']['any'])} |")
    by_threshold = results.get("threshold_sweep") or {}
    if by_threshold:
        lines += ["", "Effect of a call threshold on p(\" [\") (Table 9 analogue): accuracy (%, 95% CI) and share "
                  "of examples with a call:", "", "| suite | threshold | accuracy | calls |", "|---|---|---|---|"]
        for s, by_t in by_threshold.items():
            for t, e in sorted(by_t.items(), key=lambda kv: float(kv[0])):
                lines.append(f"| {s} | {t} | {_acc(e)} | {_pct(e['call_rate']['any'])} |")
    return "\n".join(lines)
