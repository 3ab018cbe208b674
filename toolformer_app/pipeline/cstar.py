"""The C* writer: one annotated run -> a training dataset (``dataset.jsonl`` and its ``meta.json``).

Keep the calls with L- - L+ >= tau_f (``filtering.keep_if_helpful``), merge them into their texts
(``filtering.merge_calls``), and optionally mix in the run's own call-free texts: the texts of the
run that kept no call, ``plain_ratio`` of them per text with calls. The paper's C* holds the same
texts as C, most of them without a call; a dataset of only annotated texts teaches a small model to
call everywhere and to forget (``pipeline.mix``, whose ``build_mix`` does the same across several
finished `generate` runs for the recipe). ``plain_ratio=0`` is the plain C* of the Filter tab's export.

Both files are written at once (``files.atomic_write_dir`` for a new folder), and the rows are encoded
before anything is written: a text UTF-8 cannot hold is one ValueError, and nothing is left behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolformer_app.files import atomic_write_dir, atomic_write_text, jsonl_text
from toolformer_app.pipeline.config import Candidate
from toolformer_app.pipeline.filtering import keep_if_helpful, merge_calls

DATASET_FILE = "dataset.jsonl"
META_FILE = "meta.json"
DEFAULT_SEED = 0


class NoCallKept(ValueError):
    """No call passes tau_f, so there is no C* to write (the caller says to lower tau_f)."""


@dataclass
class CStar:
    """The rows of a training dataset and what they hold."""

    rows: list[dict[str, Any]]  # each {"id", "original", "text", "calls"}; call-free rows have "calls": []
    kept: int  # calls kept at tau_f (merging keeps at most one per position)
    with_calls: int  # texts with at least one call
    plain: int  # call-free texts mixed in
    plain_ratio: float  # the ratio asked for (call-free texts per text with calls)
    available_plain: int  # the run's texts that kept no call (the most that can be mixed in)

    def meta(self, tau_f: float | dict[str, float], seed: int) -> dict[str, Any]:
        digest = hashlib.sha256("".join(json.dumps(r, sort_keys=True) + "\n" for r in self.rows).encode())
        return {"tau_f": tau_f, "texts": len(self.rows), "calls": self.kept, "with_calls": self.with_calls,
                "plain": self.plain, "plain_ratio": self.plain_ratio,
                "plain_ratio_actual": round(self.plain / self.with_calls, 3) if self.with_calls else 0.0,
                "available_plain": self.available_plain, "seed": seed, "sha256": digest.hexdigest()}


def build_cstar(texts: Mapping[str, str], candidates: Sequence[Candidate], tau_f: float | dict[str, float],
                plain_ratio: float = 0.0, seed: int = DEFAULT_SEED) -> CStar:
    """C* at ``tau_f`` (one threshold, or one per tool) with ``round(plain_ratio * texts with calls)`` of
    the run's call-free texts (fewer when the run has fewer), chosen with ``seed``; rows in text order.
    ValueError when ``plain_ratio`` is negative or not finite, or a call cannot be inserted."""
    if not math.isfinite(plain_ratio) or plain_ratio < 0:
        raise ValueError(f"plain_ratio must be a number >= 0, got {plain_ratio}")
    kept = keep_if_helpful(list(candidates), tau_f)
    merged = {r["id"]: r for r in merge_calls(dict(texts), kept)}
    pool = [i for i in texts if i not in merged]
    wanted = min(len(pool), round(plain_ratio * len(merged)))
    chosen = set(random.Random(seed).sample(pool, wanted))
    rows = [merged[i] if i in merged else {"id": i, "original": t, "text": t, "calls": []}
            for i, t in texts.items() if i in merged or i in chosen]
    return CStar(rows=rows, kept=len(kept), with_calls=len(merged), plain=len(chosen),
                 plain_ratio=float(plain_ratio), available_plain=len(pool))


def write_cstar(out: str | Path, texts: Mapping[str, str], candidates: Sequence[Candidate],
                tau_f: float | dict[str, float], plain_ratio: float = 0.0, seed: int = DEFAULT_SEED,
                meta: dict[str, Any] | None = None, allow_empty: bool = False) -> CStar:
    """Write ``build_cstar(...)`` to ``out/dataset.jsonl`` and ``out/meta.json`` (its numbers and ``meta``).

    A new folder ``out`` appears with both files at once; in an existing folder each file is replaced
    atomically. NoCallKept when no call passes ``tau_f`` (unless ``allow_empty``); ValueError before
    anything is written when a row cannot be encoded.
    """
    cstar = build_cstar(texts, candidates, tau_f, plain_ratio, seed)
    if not cstar.with_calls and not allow_empty:
        raise NoCallKept(f"no call is kept at tau_f = {tau_f}")
    files = {DATASET_FILE: jsonl_text(cstar.rows),
             META_FILE: json.dumps({**cstar.meta(tau_f, seed), **(meta or {})}, indent=2, ensure_ascii=True) + "\n"}
    out = Path(out)
    if out.is_dir():
        for name, text in files.items():  # the dataset first: a meta never describes a missing file
            atomic_write_text(out / name, text)
    else:
        atomic_write_dir(out, files)
    return cstar
