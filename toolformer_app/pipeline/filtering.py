"""Filtering and merging: keep_if_helpful, then interleave the kept calls into C*.

Every candidate keeps its three losses, so a new tau_f re-filters instantly with no model pass.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from toolformer_app.calls import ApiCall, insert_calls
from toolformer_app.pipeline.config import STAGES, Candidate

TABLE2_THRESHOLDS = (0.5, 1.0, 2.0)


def _tau(tau_f: float | dict[str, float], tool: str) -> float:
    return tau_f[tool] if isinstance(tau_f, dict) else tau_f


def keep_if_helpful(candidates: list[Candidate], tau_f: float | dict[str, float]) -> list[Candidate]:
    """The candidates with L- - L+ >= tau_f (one threshold, or one per tool)."""
    return [c for c in candidates if c.kept(_tau(tau_f, c.tool))]


def merge_calls(texts: dict[str, str], kept: list[Candidate]) -> list[dict[str, Any]]:
    """C*: x* = x_<i e(c, r) x_>=i for every kept call, across tools; texts without a call are dropped.

    At most one call per position: the one with the largest loss reduction. The text around the
    calls is byte-identical to the input (calls go in at token boundaries mapped to characters).
    """
    by_text: dict[str, dict[int, Candidate]] = defaultdict(dict)
    for c in kept:
        best = by_text[c.text_id].get(c.char_pos)
        if best is None or (c.loss_reduction or 0) > (best.loss_reduction or 0):
            by_text[c.text_id][c.char_pos] = c
    rows = []
    for text_id, text in texts.items():
        chosen = sorted(by_text.get(text_id, {}).values(), key=lambda c: c.char_pos)
        if not chosen:
            continue
        calls = [(c.char_pos, ApiCall(c.tool, c.input, c.result)) for c in chosen]
        rows.append({
            "id": text_id,
            "original": text,
            "text": insert_calls(text, calls),
            "calls": [{"tool": c.tool, "input": c.input, "result": c.result, "char_pos": c.char_pos,
                       "token_pos": c.token_pos, "loss_reduction": round(c.loss_reduction or 0.0, 6)}
                      for c in chosen],
        })
    return rows


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_GENERIC = frozenset({"today", "is", "the"})


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def borne_out(result: str | None, following: str) -> bool:
    """Whether a call's result is borne out by the text after it: one of the result's numbers, or one of
    its content words (3+ letters, no stopword), appears in the following tokens x_i .. x_{i+k}.

    A call that passes tau_f without this holds only through a generic prefix effect (measured: a
    Calendar result before "is a picaresque novel"), which is what the precision figure counts.
    """
    from toolformer_app.tools.corpus import tokenize

    if not result or not following.strip():
        return False
    if _numbers(result) & _numbers(following):
        return True
    words = {w for w in tokenize(result) if len(w) >= 3 and not w.isdigit()} - _GENERIC
    return bool(words & set(tokenize(following)))


def precision(candidates: list[Candidate]) -> float | None:
    """The share of ``candidates`` (kept calls) whose result is borne out by their next tokens."""
    if not candidates:
        return None
    return round(sum(borne_out(c.result, "".join(c.next_tokens)) for c in candidates) / len(candidates), 4)


SELF_OVERLAP_CHARS = 40


def self_overlap(result: str | None, text: str, n: int = SELF_OVERLAP_CHARS) -> bool:
    """Whether a call's result shares ``n`` or more characters (whitespace and case folded) with the text it
    is inserted in: the call retrieved its own article, and "helps" because its result is the next sentence."""
    if not result:
        return False
    r, t = " ".join(result.split()).casefold(), " ".join(text.split()).casefold()
    return any(r[i : i + n] in t for i in range(0, len(r) - n + 1))


def self_retrieved_table(candidates: list[Candidate], texts: dict[str, str]) -> dict[str, int]:
    """Per tool, the calls (of ``candidates``) whose result overlaps their own text (``self_overlap``)."""
    out: Counter = Counter()
    for c in candidates:
        if c.result and self_overlap(c.result, texts.get(c.text_id, "")):
            out[c.tool] += 1
    return {t: int(out[t]) for t in sorted({c.tool for c in candidates})}


def kept_table(candidates: list[Candidate], thresholds=TABLE2_THRESHOLDS) -> dict[str, dict[str, int]]:
    """The paper's Table 2: kept calls per tool at each tau_f."""
    tools = sorted({c.tool for c in candidates})
    return {t: {str(th): sum(1 for c in candidates if c.tool == t and c.kept(th)) for th in thresholds}
            for t in tools}


def throughput(records: list[dict[str, Any]], per_tool: dict[str, Counter]) -> dict[str, Any]:
    """Seconds per tool and stage summed over the texts' shares, and texts per minute per tool.

    Seconds are compute time summed over ranks and resumed runs (each text records its share of
    its batch), so texts per minute is per process.
    """
    seconds: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        for tool, stages in rec.get("seconds", {}).items():
            seconds[tool].update(stages)
    out: dict[str, Any] = {"per_tool": {}}
    for tool in sorted(seconds):
        total = sum(seconds[tool].values())
        texts = int(per_tool[tool]["texts_selected"])
        out["per_tool"][tool] = {
            "texts": texts,
            "seconds": round(total, 2),
            "texts_per_minute": round(60 * texts / total, 1) if total else None,
            "stage_seconds": {k: round(v, 2) for k, v in sorted(seconds[tool].items())},
        }
    total = sum(t["seconds"] for t in out["per_tool"].values())
    out["seconds"] = round(total, 2)
    out["texts_per_minute"] = round(60 * len(records) / total, 1) if total else None
    return out


def throughput_line(stats: dict[str, Any]) -> str:
    """One line: texts per minute per tool and the seconds of each stage."""
    t = stats.get("throughput") or {}
    parts = []
    for tool, d in t.get("per_tool", {}).items():
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in d["stage_seconds"].items())
        parts.append(f"{tool} {d['texts_per_minute']} texts/min ({d['texts']} texts: {stages})")
    return f"throughput: {t.get('texts_per_minute')} texts/min overall; " + "; ".join(parts)


def build_stats(records: list[dict[str, Any]], candidates: list[Candidate], tau_f: dict[str, float],
                dataset_rows: int) -> dict[str, Any]:
    """Counts for every stage, per tool and in total, plus the kept counts (Table 2)."""
    per_tool: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        for tool, counts in rec.get("counts", {}).items():
            per_tool[tool].update(counts)
        for tool, rs in rec.get("reasons", {}).items():
            reasons[tool].update(rs)
    for c in candidates:
        if c.loss_reduction is not None:
            per_tool[c.tool]["scored"] += 1
    kept = keep_if_helpful(candidates, tau_f)
    self_retrieved = self_retrieved_table(kept, {r["text_id"]: r.get("text", "") for r in records if "text_id" in r})
    tools = sorted(set(per_tool) | {c.tool for c in candidates})
    stats: dict[str, Any] = {
        "texts_seen": len(records),
        "texts_kept": dataset_rows,
        "per_tool": {
            t: {
                **{s: int(per_tool[t][s]) for s in STAGES if s != "texts_seen"},
                "candidates": sum(1 for c in candidates if c.tool == t),
                "tau_f": tau_f.get(t),
                "kept_at_tau_f": sum(1 for c in kept if c.tool == t),
                "precision": precision([c for c in kept if c.tool == t]),
                "self_retrieved": self_retrieved.get(t, 0),
                "no_result_reasons": dict(reasons[t].most_common()),
            }
            for t in tools
        },
        "kept_at_tau_f": len(kept),
        "precision": precision(kept),
        "kept_table": kept_table(candidates),
        # kept calls whose result shares >= 40 characters with their own text (0 with leave-one-out)
        "self_retrieved": self_retrieved,
        "throughput": throughput(records, per_tool),
    }
    for s in STAGES:
        if s != "texts_seen":
            stats[s] = sum(stats["per_tool"][t][s] for t in tools)
    return stats
