"""The whole data-generation pipeline over a corpus: select -> score positions -> sample -> execute
-> score -> filter -> merge into C*, with resumable output files.

Output directory layout (``generate --out DIR``):
    records[.rankN].jsonl  one line per processed text (its counts and all its candidates): the work log
    candidates.jsonl       every candidate with all its numbers, kept or not
    dataset.jsonl          C*: {"id", "original", "text" (augmented), "calls"}, written by ``cstar.write_cstar``
    meta.json              C*'s numbers (tau_f, texts, calls, sha256)
    stats.json             counts for every stage, and Table 2
Interrupting and rerunning with the same directory skips the texts already in the work log.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolformer_app.calls import api_token_id
from toolformer_app.files import (
    append_jsonl,
    atomic_write_json,
    atomic_write_jsonl,
    read_jsonl,
    read_jsonl_numbered,
    repair_jsonl,
)
from toolformer_app.pipeline.batching import TokenCounter
from toolformer_app.pipeline.config import Candidate, PipelineConfig
from toolformer_app.pipeline.cstar import build_cstar, write_cstar
from toolformer_app.pipeline.execution import count_results, run_calls
from toolformer_app.pipeline.filtering import build_stats, keep_if_helpful
from toolformer_app.pipeline.positions import encode_text, position_scores, top_positions
from toolformer_app.pipeline.sampling import (
    candidates_from_samples,
    clause_candidate,
    fixed_call_samples,
    sample_calls_batch,
)
from toolformer_app.pipeline.scoring import SPAN, plain_logprobs, score_candidates
from toolformer_app.tools import get_tool
from toolformer_app.tools.base import Tool

MAX_TEXT_TOKENS = 512  # longer texts are cut (at a token boundary) before scoring
MAX_CHARS_PER_TOKEN = 64  # far above any real token's length: the character cut never shortens those tokens


@dataclass
class TextResult:
    """One text after the pipeline: per-tool stage counts, candidates, and p_i for the UI's heat map."""

    text_id: str
    text: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    position_scores: dict[str, list[float]] = field(default_factory=dict)  # per tool, p_i per token
    tokens: list[str] = field(default_factory=list)  # x's tokens as text (for the heat map)
    char_starts: list[int] = field(default_factory=list)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # per tool and stage: this text's share

    def record(self) -> dict[str, Any]:
        return {"text_id": self.text_id, "text": self.text, "counts": self.counts, "reasons": self.reasons,
                "candidates": [c.to_dict() for c in self.candidates],
                "seconds": {t: {k: round(v, 4) for k, v in st.items()} for t, st in self.seconds.items()}}


@dataclass
class PipelineResult:
    texts: list[TextResult]
    config: PipelineConfig
    tokens: TokenCounter
    seconds: float

    @property
    def candidates(self) -> list[Candidate]:
        return [c for t in self.texts for c in t.candidates]

    def tau_f(self) -> dict[str, float]:
        return tau_f_per_tool(self.config)

    def kept(self, tau_f: float | dict[str, float] | None = None) -> list[Candidate]:
        return keep_if_helpful(self.candidates, self.tau_f() if tau_f is None else tau_f)

    def dataset(self, tau_f: float | dict[str, float] | None = None) -> list[dict[str, Any]]:
        """C* at ``tau_f`` (each tool's default when None): the texts with kept calls (``cstar.build_cstar``)."""
        tau = self.tau_f() if tau_f is None else tau_f
        return build_cstar({t.text_id: t.text for t in self.texts}, self.candidates, tau).rows

    def stats(self) -> dict[str, Any]:
        return build_stats([t.record() for t in self.texts], self.candidates, self.tau_f(), len(self.dataset()))


def tau_f_per_tool(cfg: PipelineConfig) -> dict[str, float]:
    return {name: cfg.thresholds(get_tool(name)).tau_f for name in cfg.tools}



def samples_needed(tool: Tool, cfg: PipelineConfig) -> bool:
    """False for a tool that takes no input when its name is fed: every sample would be "Name()",
    so the one possible call stands for all m (their kept set is the same; a test checks it)."""
    return tool.takes_input or not cfg.prefill_tool_name


def annotate_batch(model, tok, items: list[tuple], tools: list[Tool], cfg: PipelineConfig,
                   counter: TokenCounter | None = None, trace: list | None = None) -> list[TextResult]:
    """Run every step on a batch of (text_id, text[, meta]) for every tool whose heuristic selects the text.

    ``meta`` is the document's metadata: a "date" makes the Calendar answer with that creation date.

    ``trace`` (optional) receives (text_id, tool, position, Samples) for every sampled position:
    the benchmark replays exactly these samples through its naive reference.
    """
    counter = counter or TokenCounter()
    before = {t: dict(st) for t, st in counter.tool_seconds.items()}
    api_id = api_token_id(tok)
    encoded = {}
    results = {}
    metas = {it[0]: (it[2] if len(it) > 2 else None) for it in items}
    items = [(it[0], it[1]) for it in items]
    for text_id, text in items:
        # Only the first MAX_TEXT_TOKENS tokens are scored: tokenizing a 100 MB line whole would take gigabytes.
        enc = encode_text(tok, text_id, text[: MAX_TEXT_TOKENS * MAX_CHARS_PER_TOKEN])
        if len(enc.x_ids) > MAX_TEXT_TOKENS:  # cut at a token boundary, keeping the text byte-identical
            cut = enc.char_starts[MAX_TEXT_TOKENS]
            enc = encode_text(tok, text_id, text[:cut])
        encoded[text_id] = enc
        results[text_id] = TextResult(text_id, enc.text, tokens=[tok.decode([i]) for i in enc.x_ids],
                                      char_starts=enc.char_starts)
    all_candidates: list[Candidate] = []
    for tool in tools:
        th = cfg.thresholds(tool)
        chosen = [encoded[i] for i, _ in items if tool.accepts_document(metas[i]) and tool.selects(encoded[i].text)
                  and len(encoded[i].x_ids) >= 2]
        chosen_ids = {enc.text_id for enc in chosen}
        for text_id, _ in items:
            results[text_id].counts[tool.name] = Counter({"texts_selected": int(text_id in chosen_ids)})
            results[text_id].reasons[tool.name] = Counter()
        for s in range(0, len(chosen), cfg.batch_size):
            batch = chosen[s : s + cfg.batch_size]
            with counter.timed("positions", tool.name):
                scored = position_scores(model, tok, tool, batch, api_id, counter)
            chosen_positions = []
            for row, enc in enumerate(batch):
                res = results[enc.text_id]
                res.position_scores[tool.name] = [round(float(v), 6) for v in scored.p[row]]
                positions = top_positions(scored.p[row], enc, th.tau_s, th.k)
                res.counts[tool.name]["positions_over_tau_s"] += len(positions)
                chosen_positions.append((row, positions))
            if not samples_needed(tool, cfg):  # one possible call per position: no sampling
                drawn = [fixed_call_samples(tool.name, len(positions)) for _, positions in chosen_positions]
                for (row, positions) in chosen_positions:
                    results[batch[row].text_id].counts[tool.name]["samples_skipped"] += len(positions) * (th.m - 1)
            else:
                with counter.timed("sampling", tool.name):  # the positions of every text of the batch in one sampling batch
                    drawn = sample_calls_batch(model, tok, scored, chosen_positions, th.m, cfg, api_id, tool.name,
                                               counter)
            per_text = []
            for (row, positions), samples_at in zip(chosen_positions, drawn, strict=True):
                enc = batch[row]
                counts = results[enc.text_id].counts[tool.name]
                cands = []
                for pos, samples in zip(positions, samples_at, strict=True):
                    if trace is not None:
                        trace.append((enc.text_id, tool.name, pos, samples))
                    cands += candidates_from_samples(samples, enc, tool, pos, float(scored.p[row][pos]), counts)
                    if tool.name in cfg.clause_calls:
                        cands += clause_candidate(enc, tool, pos, float(scored.p[row][pos]), cands, counts)
                per_text.append((enc.text_id, cands))
            with counter.timed("execution", tool.name):  # the batch's calls together, per document's tool
                by_tool: dict[int, tuple[Tool, list[Candidate]]] = {}
                for text_id, cands in per_text:
                    doc_tool = tool.for_document(metas[text_id])
                    by_tool.setdefault(id(doc_tool), (doc_tool, []))[1].extend(cands)
                for doc_tool, cands in by_tool.values():
                    run_calls(cands, doc_tool)
            for text_id, cands in per_text:
                res = results[text_id]
                count_results(cands, res.counts[tool.name], res.reasons[tool.name])
                res.candidates += cands
                all_candidates += cands
            del scored
    needed = [encoded[i] for i in {c.text_id for c in all_candidates if c.result is not None}]
    start = time.perf_counter()
    with counter.timed("scoring"):  # L(eps) once per text whatever the tools, then every tool's candidates together
        until: dict[str, int] = {}
        for c in all_candidates:
            if c.result is not None:
                until[c.text_id] = max(until.get(c.text_id, 0), c.token_pos + SPAN)
        plain = plain_logprobs(model, needed, cfg.batch_size, counter, until)
        score_candidates(model, tok, all_candidates, encoded, plain, cfg.batch_size * 4, counter, cfg.placebo)
    _share_seconds(counter, before, time.perf_counter() - start, all_candidates, results, tools)
    for r in results.values():
        r.counts = {t: dict(c) for t, c in r.counts.items()}
        r.reasons = {t: dict(c) for t, c in r.reasons.items()}
    return [results[i] for i, _ in items]


def _share_seconds(counter: TokenCounter, before: dict[str, dict[str, float]], scoring_s: float,
                   candidates: list[Candidate], results: dict[str, TextResult], tools: list[Tool]) -> None:
    """Each tool's seconds in this batch, shared equally by the texts it selected: the scoring pass
    (all tools together) is split by the tools' numbers of scored candidates."""
    scored = Counter(c.tool for c in candidates if c.result is not None)
    for tool in tools:
        spent = {k: v - before.get(tool.name, {}).get(k, 0.0) for k, v in counter.tool_seconds.get(tool.name, {}).items()}
        if scored:
            spent["scoring"] = scoring_s * scored[tool.name] / sum(scored.values())
            per = counter.tool_seconds.setdefault(tool.name, {})
            per["scoring"] = per.get("scoring", 0.0) + spent["scoring"]
        texts = [r for r in results.values() if r.counts[tool.name].get("texts_selected")]
        for r in texts:
            r.seconds[tool.name] = {k: v / len(texts) for k, v in spent.items() if v}


def run_pipeline(texts: Iterable[str] | Iterable[tuple[str, str]], cfg: PipelineConfig | None = None,
                 model=None, tok=None, model_name: str | None = None,
                 on_batch: Callable[[list[TextResult]], None] | None = None,
                 progress: Callable[[int, int], None] | None = None, trace: list | None = None) -> PipelineResult:
    """Annotate ``texts`` (strings, or (id, text[, meta]) tuples) and return every candidate and C*.

    >>> result = run_pipeline(["Out of 1400 people, 400 passed."], PipelineConfig(tools=("Calculator",)))
    >>> result.dataset()  # C* at each tool's default tau_f
    """
    from toolformer_app import models

    cfg = cfg or PipelineConfig()
    cfg.validate()
    if model is None or tok is None:
        model, tok = models.load(model_name)
    items = [(t if isinstance(t, tuple) else (str(i), t)) for i, t in enumerate(texts)]
    tools = [get_tool(name) for name in cfg.tools]
    counter, start, out = TokenCounter(), time.perf_counter(), []
    for s in range(0, len(items), cfg.batch_size):
        batch = annotate_batch(model, tok, items[s : s + cfg.batch_size], tools, cfg, counter, trace)
        out += batch
        if on_batch:
            on_batch(batch)
        if progress:
            progress(min(s + cfg.batch_size, len(items)), len(items))
    return PipelineResult(out, cfg, counter, time.perf_counter() - start)


# -- the resumable directory form used by the CLI ------------------------------------------------

def records_path(out: Path, rank: int, world: int) -> Path:
    return out / ("records.jsonl" if world == 1 else f"records.rank{rank}.jsonl")


def done_ids(out: Path) -> set[str]:
    """Text ids already in any work log of ``out`` (so a rerun resumes, with no duplicates)."""
    ids: set[str] = set()
    for path in sorted(out.glob("records*.jsonl")):
        repair_jsonl(path)
        ids.update(r["text_id"] for r in read_jsonl(path) if "text_id" in r)
    return ids


def finalize(out: Path, cfg: PipelineConfig) -> dict[str, Any]:
    """Write candidates.jsonl, dataset.jsonl and stats.json from the work logs (atomically)."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("records*.jsonl")):
        repair_jsonl(path)
        for r in read_jsonl(path):
            records.setdefault(r["text_id"], r)  # first occurrence wins: never a duplicate
    ordered = sorted(records.values(), key=lambda r: _sort_key(r["text_id"]))
    candidates = [Candidate.from_dict(c) for r in ordered for c in r["candidates"]]
    tau_f = tau_f_per_tool(cfg)
    atomic_write_jsonl(out / "candidates.jsonl", (c.to_dict() for c in candidates))
    # C* through the one writer (dataset.jsonl and meta.json); a run that kept no call writes an empty one
    cstar = write_cstar(out, {r["text_id"]: r["text"] for r in ordered}, candidates, tau_f, allow_empty=True)
    stats = build_stats(ordered, candidates, tau_f, cstar.with_calls)
    stats["config"] = cfg.to_dict()
    atomic_write_json(out / "stats.json", stats)
    return stats


def _sort_key(text_id: str) -> tuple:
    head, _, tail = text_id.rpartition(":")
    return (head, int(tail)) if tail.isdigit() else (text_id, 0)


def load_candidates(path: str | Path, errors: list[str] | None = None) -> list[Candidate]:
    """Candidates from a candidates.jsonl (malformed lines reported in ``errors``, the rest used)."""
    out = []
    for n, row in read_jsonl_numbered(path, errors):  # n: the line in the file
        try:
            out.append(Candidate.checked(row))
        except ValueError as exc:
            if errors is not None:
                errors.append(f"line {n}: not a candidate ({exc})")
    return out


def save_config(out: Path, cfg: PipelineConfig, extra: dict[str, Any]) -> None:
    path = out / "config.json"
    if not path.exists():
        atomic_write_json(path, {**cfg.to_dict(), **extra})


def append_records(path: Path, results: list[TextResult]) -> None:
    for r in results:
        append_jsonl(path, r.record())
