"""Calibrated calling: a threshold on p(" [") chosen on a validation split of the *training sources*.

At k = 10 (the paper's evaluation mode) a small model calls on nearly every input; at k = 1 it never
calls, since p(" [") is never its top token. Chat instead calls when p(" [") reaches a threshold
chosen here, never on an evaluation suite:

- positives: arithmetic-corpus texts the recipe never read (ids after its ``--limit``), cut right
  before the number that the calculation gives ("… reaching" | "44073"): the largest p(" [") over the
  prompt's positions (the same statistic as the negatives: a call may start anywhere);
- negatives: training-split wiki passages that no mix row holds: the largest p(" [") over all of a
  passage's positions, teacher-forced (a continuation with tools calls if it crosses the threshold
  anywhere).

The threshold calls on the most positives among those with FPR <= ``max_fpr`` (ties: the fewest false
calls), the Neyman-Pearson rule for a budget of false calls. Maximising TPR - FPR under the cap (the first
rule) chose 0.062 for the shipped adapter (TPR 83%, FPR 1%), which left most of the 10% budget unused and
called on 42% of the math suite's questions, whose format the arithmetic corpus lacks. When no threshold
under that FPR calls on any positive, there is none (``call_threshold`` null: Chat keeps the paper's top-k). It is written
to the model card (``toolformer_card.json``, key "calling"), where Chat and ``chat --call-threshold card`` read it.

    python -m toolformer_app calibrate --model runs/recipe/adapter --mix runs/recipe/mix.jsonl --write-card
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_MAX_FPR = 0.10


def positive_prompts(skip: int, n: int) -> list[str]:
    """Arithmetic texts ``skip`` .. ``skip + n`` cut right before their calculation's result."""
    from toolformer_app.pipeline.arithmetic import arithmetic_texts
    from toolformer_app.tools.calculator import arithmetic_triple

    out = []
    for _, text in arithmetic_texts(skip + n)[skip:]:
        triple = arithmetic_triple(text)
        if triple is None:
            continue
        at = text.rfind(triple[3])
        if at > 0 and text[:at].strip():
            out.append(text[:at].rstrip())
    return out


def negative_texts(exclude_ids: set[str], n: int, seed: int = 0) -> list[str]:
    """``n`` training-split wiki passages (first passage of an extract) that no mix row holds."""
    import random

    from toolformer_app.pipeline.corpus import split_passage as _split_passage
    from toolformer_app.pipeline.split import training_wiki_items

    items = [(f"wiki:{i}", extract) for i, _, extract in training_wiki_items() if f"wiki:{i}" not in exclude_ids]
    random.Random(seed).shuffle(items)
    return [_split_passage(extract)[0] for _, extract in items[:n]]


def api_probabilities(model: Any, tok: Any, texts: list[str], last_only: bool, max_tokens: int = 128) -> list[float]:
    """p(" [") after each text's last token (``last_only``) or its maximum over the text's positions."""
    import torch

    from toolformer_app.calls import api_token_id

    api = api_token_id(tok)
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tok.encode(text)[:max_tokens]
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float()
            p = torch.softmax(logits, -1)[:, api]
            out.append(float(p[-1] if last_only else p.max()))
    return out


def choose_threshold(pos: list[float], neg: list[float], max_fpr: float = DEFAULT_MAX_FPR) -> dict[str, Any]:
    """The threshold t with the largest TPR (then the smallest FPR) among those with FPR <= max_fpr (a call when
    p >= t), and its rates."""
    if not pos or not neg:
        raise ValueError("calibration needs positive and negative examples")
    best = None
    for t in sorted(set(pos) | set(neg)):
        tpr = sum(p >= t for p in pos) / len(pos)
        fpr = sum(p >= t for p in neg) / len(neg)
        if fpr <= max_fpr and (best is None or (tpr, -fpr) > (best[1], -best[2])):
            best = (t, tpr, fpr)
    if best is None:  # every threshold calls on too many negatives: above the largest negative
        top = max(neg)
        best = (top * 1.0001, sum(p > top for p in pos) / len(pos), 0.0)
    t, tpr, fpr = best
    return {"call_threshold": round(t, 6) if tpr > 0 else None, "tpr": round(tpr, 4), "fpr": round(fpr, 4),
            "max_fpr": max_fpr, "n_positive": len(pos), "n_negative": len(neg),
            "positive_p_max": round(max(pos), 6), "negative_p_quantile_90": round(sorted(neg)[int(0.9 * len(neg))], 6)}


def calibrate(model_name: str, mix: str | Path | None = None, skip: int = 160, n: int = 100,
              max_fpr: float = DEFAULT_MAX_FPR) -> dict[str, Any]:
    """Measure both sides on ``model_name`` and choose the threshold (see the module docstring)."""
    from toolformer_app import models
    from toolformer_app.files import read_jsonl

    model, tok = models.load(model_name)
    exclude = {r["id"] for r in read_jsonl(mix)} if mix else set()
    exclude |= {i.split(".", 1)[0] for i in exclude}
    pos = api_probabilities(model, tok, positive_prompts(skip, n), last_only=False)
    neg = api_probabilities(model, tok, negative_texts(exclude, n), last_only=False)
    return {**choose_threshold(pos, neg, max_fpr), "source": {
        "positives": f"arithmetic corpus texts {skip}..{skip + n} cut before the result",
        "negatives": "training-split wiki passages outside the mix (max p over positions)"}}


def write_card(model_dir: str | Path, calling: dict[str, Any]) -> Path:
    """Merge ``calling`` into the directory's toolformer_card.json (atomically)."""
    from toolformer_app.files import atomic_write_json
    from toolformer_app.models import CARD_NAME

    path = Path(model_dir) / CARD_NAME
    card = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    card["calling"] = calling
    atomic_write_json(path, card)
    return path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate", help="choose Chat's call threshold on p(' [') on training sources",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a finetune directory (or preset)")
    p.add_argument("--mix", default=None, help="the finetune's mix: its wiki passages are never negatives")
    p.add_argument("--skip", type=int, default=160, help="arithmetic texts the recipe read (positives start after)")
    p.add_argument("--n", type=int, default=100, help="examples per side")
    p.add_argument("--max-fpr", type=float, default=DEFAULT_MAX_FPR)
    p.add_argument("--write-card", action="store_true", help="store the result in the model's card")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from toolformer_app import models

    try:
        result = calibrate(args.model, args.mix, args.skip, args.n, args.max_fpr)
    except (ValueError, models.ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.write_card:
        if not Path(args.model).is_dir():
            print("error: --write-card needs a model directory", file=sys.stderr)
            return 2
        write_card(args.model, result)
    print(json.dumps(result))
    return 0
