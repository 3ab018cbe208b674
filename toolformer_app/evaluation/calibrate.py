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

Per tool (``--per-tool``): with constrained names, the tool a call gets is the name the model would write after
" [". Each text's score for a tool is its largest p(" [") when the model's greedy name there is that tool, else 0;
the tool's threshold is chosen as above, with its own positives against every other text (the wiki negatives and
the other tools' positives: arithmetic must not get QA calls). QA's positives: the country statements and
questions (``pipeline.countries``) that generate never read (after ``--qa-skip``), cut before the capital.
Stored as ``calling.per_tool``; Chat and ``chat --call-threshold card`` then call a tool only above its own.

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


def qa_positive_prompts(skip: int, n: int) -> list[str]:
    """Country texts ``skip`` .. ``skip + n`` (``pipeline.countries``), cut where QA's answer is needed: right after a
    question, or before the capital that a statement gives."""
    from toolformer_app.pipeline.countries import country_texts

    out = []
    for _, text in country_texts()[skip: skip + n]:
        q = text.find("? ")
        if q > 0:
            out.append(text[: q + 1])
            continue
        at = text.find(" is ", text.find("The capital of"))
        if at > 0:
            out.append(text[: at + 3])
    return out


def name_after_call(model: Any, tok: Any, text: str, max_tokens: int = 4) -> str:
    """The tool name the model writes greedily after ``text`` + " [" ("" when it writes no known name)."""
    import torch

    from toolformer_app.calls import API_START
    from toolformer_app.tools import tool_names

    ids = tok.encode(text + API_START)
    new: list[int] = []
    with torch.inference_mode():
        for _ in range(max_tokens):
            logits = model(input_ids=torch.tensor([ids + new], device=model.device)).logits[0, -1]
            new.append(int(logits.argmax()))
            written = tok.decode(new)
            names = [n for n in tool_names() if (n + "(").startswith(written.strip()) or written.strip().startswith(n)]
            if len(names) == 1 and written.strip().startswith(names[0]):
                return names[0]
            if not names:
                return ""
    return ""


def api_probabilities_and_names(model: Any, tok: Any, texts: list[str],
                                max_tokens: int = 128) -> list[tuple[float, str]]:
    """(max p(" [") over a text's positions, the name the model writes after " [" at that position)."""
    import torch

    from toolformer_app.calls import api_token_id

    api = api_token_id(tok)
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tok.encode(text)[:max_tokens]
            p = torch.softmax(model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float(), -1)[:, api]
            at = int(p.argmax())
            out.append((float(p[at]), name_after_call(model, tok, tok.decode(ids[: at + 1]))))
    return out


def per_tool_thresholds(sides: dict[str, list[tuple[float, str]]], negatives: list[tuple[float, str]],
                        max_fpr: float = DEFAULT_MAX_FPR) -> dict[str, dict[str, Any]]:
    """Each tool's threshold: its positives (``sides[tool]``) against the negatives and the other tools' positives,
    a text scoring its p(" [") when the model's name there is the tool, else 0."""
    out = {}
    for tool, pos in sides.items():
        others = negatives + [x for t, xs in sides.items() if t != tool for x in xs]
        out[tool] = choose_threshold([p if n == tool else 0.0 for p, n in pos],
                                     [p if n == tool else 0.0 for p, n in others], max_fpr)
        out[tool]["named"] = round(sum(n == tool for _, n in pos) / max(1, len(pos)), 4)  # name right, any p
    return out


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
              max_fpr: float = DEFAULT_MAX_FPR, per_tool: bool = False, qa_skip: int = 128) -> dict[str, Any]:
    """Measure both sides on ``model_name`` and choose the threshold (see the module docstring)."""
    from toolformer_app import models
    from toolformer_app.files import read_jsonl

    model, tok = models.load(model_name)
    exclude = {r["id"] for r in read_jsonl(mix)} if mix else set()
    exclude |= {i.split(".", 1)[0] for i in exclude}
    source = {"positives": f"arithmetic corpus texts {skip}..{skip + n} cut before the result",
              "negatives": "training-split wiki passages outside the mix (max p over positions)"}
    if per_tool:
        calc = api_probabilities_and_names(model, tok, positive_prompts(skip, n))
        qa = api_probabilities_and_names(model, tok, qa_positive_prompts(qa_skip, n))
        negs = api_probabilities_and_names(model, tok, negative_texts(exclude, n))
        tools = per_tool_thresholds({"Calculator": calc, "QA": qa}, negs, max_fpr)
        tools["QA"]["source"] = (f"country texts {qa_skip}..{qa_skip + n} (the other form of countries that generate "
                                  "read: questions where it read statements) cut before the capital")
        return {**choose_threshold([p for p, _ in calc], [p for p, _ in negs], max_fpr), "source": source,
                "per_tool": tools}
    pos = api_probabilities(model, tok, positive_prompts(skip, n), last_only=False)
    neg = api_probabilities(model, tok, negative_texts(exclude, n), last_only=False)
    return {**choose_threshold(pos, neg, max_fpr), "source": source}


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
    p.add_argument("--per-tool", action="store_true",
                   help="also a threshold per tool (Calculator, QA), by the name the model would write after ' ['")
    p.add_argument("--qa-skip", type=int, default=128, help="country texts generate read (QA's positives start after)")
    p.add_argument("--write-card", action="store_true", help="store the result in the model's card")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from toolformer_app import models

    try:
        result = calibrate(args.model, args.mix, args.skip, args.n, args.max_fpr, args.per_tool, args.qa_skip)
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
