"""The finetuning mix: C* from several `generate` runs, plus texts without calls from the same sources.

The paper finetunes on C*, which holds the same texts as C with calls interleaved where they
helped; most of its texts therefore carry no call. A mix of only annotated texts teaches a small
model to call everywhere (measured here: a 135M model finetuned on 158 arithmetic and 42 wiki texts,
all with calls, called the Calculator after "The capital of Peru is" on 18 of 25 facts prompts).
Texts without calls teach it when *not* to call, and keep its language model.

``plain_ratio`` is the number of call-free texts per text with calls. It is taken first from the
texts each run read but kept no call for (the same sources), then from training-split wiki
passages that no run read (``pipeline.split``: never an evaluation article).

``borne_out_only`` (default on) keeps only calls whose result is borne out by the next tokens
(``filtering.borne_out``, the C* precision test): a call that passed tau_f through a generic
prefix effect (a 135M model's MT inputs are mostly gibberish, "[MT(en_ofAMADE deFARABE…)]", and
25% of its kept MT calls are borne out) would teach the model to call for no reason.

``max_calls_per_text`` keeps the calls with the largest loss reduction: at inference the model
makes at most one call per input (paper, section 4), and adjacent duplicate calls
("Welcome to [Calendar()] the [Calendar()] May 2018") teach it to repeat calls.

Teaching *when*: call-free texts come from each source in proportion to its call texts (dated text
mostly without a Calendar call, encyclopedic text mostly without a search), so that no source is tied
to calling; and the largest tool holds at most ``max_tool_share`` of the call texts (the templated dated
corpus once made half of them, and the model then called the Calendar on short factual statements).
A tool's texts over the cap are the ones with the smallest loss reduction; they join their source's
call-free pool. A call whose result overlaps its own text (``filtering.self_overlap``: it copied the
next sentence) is never kept.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolformer_app.calls import ApiCall, insert_calls
from toolformer_app.files import atomic_write_json, atomic_write_text, jsonl_text, read_jsonl
from toolformer_app.pipeline.filtering import borne_out

DEFAULT_PLAIN_RATIO = 2.0
DEFAULT_MAX_TOOL_SHARE = 0.35
# Seeded corpora written from templates: at most one call-free text per call text from each (their
# call-free texts taught a finetune "is 101,300 inhabitants" after "The capital of X is"); the rest of
# the call-free texts are encyclopedic (wiki), the closest to what the model is asked about facts.
TEMPLATED_SOURCES = ("arith", "steps", "dated", "mt-fr", "mt-es")
TEMPLATED_RATIO = 1.0
DEFAULT_SEED = 0


@dataclass
class MixStats:
    with_calls: int
    plain: int
    plain_ratio: float
    calls_per_tool: dict[str, int]
    texts_per_source: dict[str, int]
    sha256: str
    texts_without_borne_out_call: int = 0
    self_retrieved_dropped: int = 0
    capped_per_tool: dict[str, int] | None = None  # call texts moved to the call-free pool by the share cap
    plain_per_source: dict[str, int] | None = None
    call_repeats: int = 1  # each call text appears this many times (the call-free texts once)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _source(text_id: str) -> str:
    return text_id.split(":", 1)[0]


def _best_calls(row: dict[str, Any], max_calls: int) -> dict[str, Any]:
    """The row with only its ``max_calls`` best calls (largest loss reduction), re-inserted into the original."""
    calls = sorted(row["calls"], key=lambda c: -float(c.get("loss_reduction") or 0.0))[:max_calls]
    calls.sort(key=lambda c: c["char_pos"])
    text = insert_calls(row["original"], [(c["char_pos"], ApiCall(c["tool"], c["input"], c["result"]))
                                          for c in calls])
    return {"id": row["id"], "text": text, "calls": calls}


def _following(gen_dir: Path) -> dict[tuple[str, int, str, str], str]:
    """(text id, char_pos, tool, input) -> the next tokens x_i .. x_{i+4} of each scored candidate."""
    out = {}
    if (gen_dir / "candidates.jsonl").exists():
        for c in read_jsonl(gen_dir / "candidates.jsonl"):
            if c.get("next_tokens"):
                out[(c["text_id"], c["char_pos"], c["tool"], c["input"])] = "".join(c["next_tokens"])
    return out


def _best_reduction(row: dict[str, Any]) -> float:
    return max(float(c.get("loss_reduction") or 0.0) for c in row["calls"])


def cap_tool_share(rows: list[dict[str, Any]], max_share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, dropped): the largest tool (by each row's first call) holds at most ``max_share`` of the rows,
    keeping its rows with the largest loss reduction.

    Only the largest tool is capped: capping every tool at once would cut the mix to a few times the
    smallest tools' counts (measured: 5 WikiSearch, 1 QA and 3 MT texts would cap the Calculator and the
    Calendar at 10 each, 29 call texts in all), so the second tool may still hold more than ``max_share``
    (``MixStats.calls_per_tool`` says so).
    """
    if not 0 < max_share <= 1:
        raise ValueError(f"max_tool_share must be in (0, 1], got {max_share}")
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_tool.setdefault(r["calls"][0]["tool"], []).append(r)
    for group in by_tool.values():
        group.sort(key=_best_reduction, reverse=True)
    sizes = {t: len(g) for t, g in by_tool.items()}
    if len(sizes) > 1 and max_share < 1:
        top = max(sizes, key=lambda t: sizes[t])
        others = sum(sizes.values()) - sizes[top]  # n <= share * (n + others)  <=>  n <= share * others / (1 - share)
        sizes[top] = min(sizes[top], int(max_share * others / (1 - max_share)))
    kept = [r for t, g in by_tool.items() for r in g[: sizes[t]]]
    dropped = [r for t, g in by_tool.items() for r in g[sizes[t] :]]
    return kept, dropped


def limit_tools(rows: list[dict[str, Any]], limits: dict[str, int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, dropped): each tool named in ``limits`` keeps at most that many rows (by each row's first call),
    those with the largest loss reduction. Holds one tool's count fixed while another source grows (the share
    cap only ever trims the largest tool)."""
    if any(n < 0 for n in limits.values()):
        raise ValueError(f"tool limits must be >= 0, got {limits}")
    ranked = sorted(rows, key=_best_reduction, reverse=True)
    taken: Counter[str] = Counter()
    kept, dropped = [], []
    for r in ranked:
        tool = r["calls"][0]["tool"]
        if tool in limits and taken[tool] >= limits[tool]:
            dropped.append(r)
        else:
            taken[tool] += 1
            kept.append(r)
    return kept, dropped


def build_mix(gen_dirs: list[str | Path], plain_ratio: float = DEFAULT_PLAIN_RATIO, seed: int = DEFAULT_SEED,
              max_calls_per_text: int = 1, extra_wiki: bool = True,
              borne_out_only: bool = True,
              max_tool_share: float = DEFAULT_MAX_TOOL_SHARE,
              call_repeats: int = 1,
              tool_limits: dict[str, int] | None = None) -> tuple[list[dict[str, Any]], MixStats]:
    """Rows for `finetune` (each {"id", "text", "calls"}) and their statistics, shuffled with ``seed``.

    ``call_repeats``: each call text appears that many times, so a finetune passes over the calls more often
    without less call-free text (a lower ``plain_ratio`` buys the same passes by dropping call-free text, which
    measured as forgetting); ``plain_ratio`` still counts call texts once. ``tool_limits`` ({tool: n}) keeps at
    most n call texts of a tool (``limit_tools``), before the share cap; the rest join the call-free pools."""
    from toolformer_app.pipeline.filtering import self_overlap

    if plain_ratio < 0:
        raise ValueError(f"plain_ratio must be >= 0, got {plain_ratio}")
    if max_calls_per_text < 1:
        raise ValueError(f"max_calls_per_text must be >= 1, got {max_calls_per_text}")
    if call_repeats < 1:
        raise ValueError(f"call_repeats must be >= 1, got {call_repeats}")
    annotated: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}  # every text a run read, by id
    dropped = 0  # texts whose calls were all dropped as not borne out (they join the call-free pool)
    copies = 0  # calls whose result is their own text (self-retrieval), never kept
    for d in map(Path, gen_dirs):
        for name in ("dataset.jsonl", "records.jsonl"):
            if not (d / name).exists():
                raise ValueError(f"{d} is not a finished generate run (no {name})")
        following = _following(d) if borne_out_only else {}
        for row in read_jsonl(d / "dataset.jsonl"):
            honest = [c for c in row["calls"] if not self_overlap(c["result"], row["original"])]
            copies += len(row["calls"]) - len(honest)
            row = {**row, "calls": honest}
            if not honest:
                dropped += 1
                continue
            if borne_out_only:
                row = {**row, "calls": [c for c in row["calls"] if borne_out(
                    c["result"], following.get((row["id"], c["char_pos"], c["tool"], c["input"]), ""))]}
                if not row["calls"]:
                    dropped += 1
                    continue
            # a text annotated by two runs (two tools) keeps the run with the best call
            best = annotated.get(row["id"])
            if best is None or max(c["loss_reduction"] for c in row["calls"]) > max(
                    c["loss_reduction"] for c in best["calls"]):
                annotated[row["id"]] = row
        for rec in read_jsonl(d / "records.jsonl"):
            seen.setdefault(rec["text_id"], rec["text"])
    rng = random.Random(seed)
    with_calls = [_best_calls(annotated[i], max_calls_per_text) for i in sorted(annotated)]
    with_calls, over_limit = limit_tools(with_calls, tool_limits or {})
    with_calls, over_cap = cap_tool_share(with_calls, max_tool_share)
    over_cap += over_limit
    with_calls.sort(key=lambda r: r["id"])
    capped = Counter(r["calls"][0]["tool"] for r in over_cap)
    kept_ids = {r["id"] for r in with_calls}
    # call-free texts per source, in proportion to the source's call texts (texts over the cap included)
    pools: dict[str, list[tuple[str, str]]] = {}
    for i, t in sorted(seen.items()):
        if i not in kept_ids:
            pools.setdefault(_source(i), []).append((i, t))
    calls_per_source = Counter(_source(r["id"]) for r in with_calls)
    plain_pairs: list[tuple[str, str]] = []
    for source in sorted(pools):
        rng.shuffle(pools[source])
        ratio = min(plain_ratio, TEMPLATED_RATIO) if source in TEMPLATED_SOURCES else plain_ratio
        plain_pairs += pools[source][: round(ratio * calls_per_source.get(source, 0))]
    wanted = round(plain_ratio * len(with_calls))
    if extra_wiki and len(plain_pairs) < wanted:  # sources short of call-free text: encyclopedic passages
        from toolformer_app.pipeline.corpus import first_wiki_passages

        taken = {i for i, _ in plain_pairs}
        spare = [p for p in pools.get("wiki", []) if p[0] not in taken]
        extra = [(i, t) for i, t in first_wiki_passages() if i not in seen and i not in annotated]
        rng.shuffle(extra)
        plain_pairs += (spare + extra)[: wanted - len(plain_pairs)]
    plain = [{"id": i, "text": t, "calls": []} for i, t in plain_pairs[:wanted]]
    rows = with_calls * call_repeats + plain
    rng.shuffle(rows)
    # the sha256 of the file write_mix writes (the card's "file sha256" and `finetune`'s data hash are the same)
    digest = hashlib.sha256(jsonl_text(rows).encode("utf-8")).hexdigest()
    stats = MixStats(
        with_calls=len(with_calls), plain=len(plain),
        plain_ratio=round(len(plain) / len(with_calls), 3) if with_calls else 0.0,
        calls_per_tool=dict(Counter(c["tool"] for r in with_calls for c in r["calls"])),
        texts_per_source=dict(Counter(_source(r["id"]) for r in rows)), sha256=digest,
        texts_without_borne_out_call=dropped, self_retrieved_dropped=copies, capped_per_tool=dict(capped),
        plain_per_source=dict(Counter(_source(r["id"]) for r in plain)), call_repeats=call_repeats,
    )
    return rows, stats


def write_mix(out: str | Path, gen_dirs: list[str | Path], **kwargs: Any) -> MixStats:
    """Write the mix to ``out`` (JSONL) and its statistics next to it (``<out>.stats.json``), atomically."""
    rows, stats = build_mix(gen_dirs, **kwargs)
    out = Path(out)
    atomic_write_text(out, jsonl_text(rows))
    atomic_write_json(out.with_suffix(".stats.json"), {**stats.to_dict(), "sources": [str(d) for d in gen_dirs],
                                                       **kwargs})
    return stats


def add_mixes(parts: list[tuple[list[dict[str, Any]], MixStats]], seed: int = DEFAULT_SEED
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Mixes built apart (each with its own call-free ratio) as one: every id once (the first part keeps it),
    shuffled with ``seed``. The statistics are those of the rows written (counts, calls per tool, sources, the
    file's sha256), with each part's own under ``parts``."""
    rows: list[dict[str, Any]] = []
    ids: set[str] = set()
    for part, _ in parts:
        rows += [r for r in part if r["id"] not in ids]
        ids |= {r["id"] for r in part}
    random.Random(seed).shuffle(rows)
    called = [r for r in rows if r["calls"]]
    stats = {
        "with_calls": len(called), "plain": len(rows) - len(called),
        "plain_ratio": round((len(rows) - len(called)) / len(called), 3) if called else 0.0,
        "calls_per_tool": dict(Counter(c["tool"] for r in called for c in r["calls"])),
        "texts_per_source": dict(Counter(_source(r["id"]) for r in rows)),
        "sha256": hashlib.sha256(jsonl_text(rows).encode("utf-8")).hexdigest(),
        "parts": [s.to_dict() for _, s in parts],
    }
    return rows, stats
