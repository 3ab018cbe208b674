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
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolformer_app.calls import ApiCall, insert_calls
from toolformer_app.files import atomic_write_json, atomic_write_jsonl, read_jsonl
from toolformer_app.pipeline.filtering import borne_out

DEFAULT_PLAIN_RATIO = 2.0
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


def build_mix(gen_dirs: list[str | Path], plain_ratio: float = DEFAULT_PLAIN_RATIO, seed: int = DEFAULT_SEED,
              max_calls_per_text: int = 1, extra_wiki: bool = True,
              borne_out_only: bool = True) -> tuple[list[dict[str, Any]], MixStats]:
    """Rows for `finetune` (each {"id", "text", "calls"}) and their statistics, shuffled with ``seed``."""
    if plain_ratio < 0:
        raise ValueError(f"plain_ratio must be >= 0, got {plain_ratio}")
    if max_calls_per_text < 1:
        raise ValueError(f"max_calls_per_text must be >= 1, got {max_calls_per_text}")
    annotated: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}  # every text a run read, by id
    dropped = 0  # texts whose calls were all dropped as not borne out (they join the call-free pool)
    for d in map(Path, gen_dirs):
        for name in ("dataset.jsonl", "records.jsonl"):
            if not (d / name).exists():
                raise ValueError(f"{d} is not a finished generate run (no {name})")
        following = _following(d) if borne_out_only else {}
        for row in read_jsonl(d / "dataset.jsonl"):
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
    pool = [(i, t) for i, t in sorted(seen.items()) if i not in annotated]
    rng.shuffle(pool)
    wanted = round(plain_ratio * len(with_calls))
    if extra_wiki and len(pool) < wanted:
        from toolformer_app.pipeline.cli import _split_passage
        from toolformer_app.pipeline.split import training_wiki_items

        extra = [(f"wiki:{n}", _split_passage(extract)[0]) for n, _, extract in training_wiki_items()
                 if f"wiki:{n}" not in seen and f"wiki:{n}" not in annotated]
        rng.shuffle(extra)
        pool += extra[: wanted - len(pool)]
    plain = [{"id": i, "text": t, "calls": []} for i, t in pool[:wanted]]
    rows = with_calls + plain
    rng.shuffle(rows)
    digest = hashlib.sha256("\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()).hexdigest()
    stats = MixStats(
        with_calls=len(with_calls), plain=len(plain),
        plain_ratio=round(len(plain) / len(with_calls), 3) if with_calls else 0.0,
        calls_per_tool=dict(Counter(c["tool"] for r in with_calls for c in r["calls"])),
        texts_per_source=dict(Counter(_source(r["id"]) for r in rows)), sha256=digest,
        texts_without_borne_out_call=dropped,
    )
    return rows, stats


def write_mix(out: str | Path, gen_dirs: list[str | Path], **kwargs: Any) -> MixStats:
    """Write the mix to ``out`` (JSONL) and its statistics next to it (``<out>.stats.json``), atomically."""
    rows, stats = build_mix(gen_dirs, **kwargs)
    out = Path(out)
    atomic_write_jsonl(out, rows)
    atomic_write_json(out.with_suffix(".stats.json"), {**stats.to_dict(), "sources": [str(d) for d in gen_dirs],
                                                       **kwargs})
    return stats
