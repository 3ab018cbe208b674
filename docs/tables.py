"""The generated tables of README.md and docs/*.md, rewritten from the files they come from (`make docs`).

    python docs/tables.py           # rewrite every marked table in place (what `make docs` runs)
    python docs/tables.py --check   # change nothing; exit 1 and name the files whose tables differ

A table sits between two markers, ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``. NAME says where it comes
from: ``results``, ``eval``, ``calls`` and ``targets`` from the shipped model's stored eval results
(``data/eval_results.json`` and ``data/eval_calibrated_results.json`` in its folder), ``bench-X`` from
``docs/bench/X.json`` (a bench's figures with its command, machine, date and commit). Rewriting is idempotent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL_DATA = ROOT / "assets" / "models" / "smollm2-135m-toolformer" / "data"
BENCH_DIR = ROOT / "docs" / "bench"
BLOCK = re.compile(r"(<!-- ([\w-]+):begin -->\n)(.*?)(<!-- \2:end -->)", re.S)

SUITE_NAMES = {"math": "math", "facts": "facts", "facts_plain": "facts as written", "dates": "dates"}
TOOLS = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")


def _load(name: str) -> dict[str, Any]:
    return json.loads((MODEL_DATA / name).read_text(encoding="utf-8"))


def _entry(results: dict[str, Any], suite: str, mode: str) -> dict[str, Any]:
    return ((results["suites"].get(suite) or {}).get(mode)) or {}


def _pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def _ppl(results: dict[str, Any], mode: str) -> str:
    value = _entry(results, "perplexity", mode).get("perplexity")
    return "—" if value is None else f"{value:.2f}"


def _threshold(cal: dict[str, Any]) -> str:
    """The calibrated eval's thresholds on p(" ["): the card's, one per tool where it has them."""
    config = cal.get("config") or {}
    value, per_tool = config.get("call_threshold"), config.get("tool_thresholds") or {}
    if value is None:
        return "calibrated"
    parts = [f"{value:.3f}"] + [f"{tool} {t:.3f}" for tool, t in sorted(per_tool.items())]
    return "p(\" [\") ≥ " + (f"{parts[0]} ({', '.join(parts[1:])})" if per_tool else parts[0])


def results_table() -> str:
    """README: the shipped model against its base, accuracy in % per suite (test split)."""
    res, cal = _load("eval_results.json"), _load("eval_calibrated_results.json")
    n = _entry(res, "math", "tools").get("n", 100)
    lines = [f"| test split (n = {n}) | base `smollm2-135m` | `smollm2-135m-toolformer`, tools (k = 10) "
             "| tools, Chat's calibrated threshold | tools disabled |", "|---|---|---|---|---|"]
    for suite, name in SUITE_NAMES.items():
        base, tools, off = (_pct(_entry(res, suite, m).get("accuracy")) for m in ("base", "tools", "disabled"))
        calibrated = _pct(_entry(cal, suite, "tools").get("accuracy"))
        label = "facts (LAMA prompt)" if suite == "facts" else name
        lines.append(f"| {label} | {base} | **{tools}** | {calibrated} | {off} |")
    lines.append(f"| held-out perplexity (lower is better) | {_ppl(res, 'base')} | — | — | {_ppl(res, 'disabled')} |")
    plain = _pct(_entry(res, "plain", "tools").get("call_rate", {}).get("any"))
    plain_cal = _pct(_entry(cal, "plain", "tools").get("call_rate", {}).get("any"))
    lines.append(f"| plain sentences with a call (%) | — | {plain} | {plain_cal} | — |")
    return "\n".join(lines)


def eval_table() -> str:
    """docs/shipped-model.md: accuracy with its 95% Wilson interval, and perplexity, per mode."""
    res, cal = _load("eval_results.json"), _load("eval_calibrated_results.json")
    lines = ["| mode | " + " | ".join(SUITE_NAMES.values()) + " | perplexity |", "|---" * (len(SUITE_NAMES) + 2) + "|"]
    rows = [(f"base (`{res.get('base_model', 'smollm2-135m')}`)", res, "base"), ("tools (k = 10)", res, "tools"),
            (f"tools, {_threshold(cal)}", cal, "tools"), ("tools disabled", res, "disabled")]
    for label, results, mode in rows:
        cells = []
        for suite in SUITE_NAMES:
            e = _entry(results, suite, mode)
            if e.get("accuracy") is None:
                cells.append("—")
            else:
                cells.append(f"{_pct(e['accuracy'], 1)} [{_pct(e['ci_low'], 1)}, {_pct(e['ci_high'], 1)}]")
        ppl = _ppl(results, mode) if results is res else "—"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ppl} |")
    return "\n".join(lines)


def calls_table() -> str:
    """docs/shipped-model.md: share of items with a call per tool, at k = 10 and at Chat's calibrated threshold."""
    res, cal = _load("eval_results.json"), _load("eval_calibrated_results.json")
    lines = ["| suite | decoding | " + " | ".join(TOOLS) + " | any |", "|---" * (len(TOOLS) + 3) + "|"]
    for suite in (*SUITE_NAMES, "plain"):
        for label, results in (("k = 10", res), (_threshold(cal), cal)):
            e = _entry(results, suite, "tools")
            if not e:
                continue
            rate = e.get("call_rate") or {}
            lines.append(f"| {SUITE_NAMES.get(suite, suite)} | {label} | "
                         + " | ".join(_pct(rate.get(t)) for t in (*TOOLS, "any")) + " |")
    return "\n".join(lines)


def targets_table() -> str:
    """docs/shipped-model.md: the recipe's targets, met or missed by how much (evaluation.targets)."""
    from toolformer_app.evaluation import targets

    rows = targets.check(_load("eval_results.json"), _load("eval_calibrated_results.json"))
    return targets.markdown(rows)


def bench_table(name: str) -> str:
    """docs/benchmarks.md: one bench's figures, under the line that says how to reproduce them."""
    b = json.loads((BENCH_DIR / f"{name}.json").read_text(encoding="utf-8"))
    lines = [f"`{b['command']}` · {b['machine']} · {b['date']} · commit `{b['commit']}`", ""]
    if b.get("notes"):
        lines += [b["notes"], ""]
    cols = b["columns"]
    lines += ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in b["rows"]]
    return "\n".join(lines)


GENERATORS: dict[str, Callable[[], str]] = {
    "results": results_table, "eval": eval_table, "calls": calls_table, "targets": targets_table,
}


def generate(name: str) -> str:
    if name.startswith("bench-"):
        return bench_table(name.removeprefix("bench-"))
    if name not in GENERATORS:
        raise KeyError(f"unknown generated table {name!r} (known: {', '.join(GENERATORS)}, bench-<file>)")
    return GENERATORS[name]()


def render(text: str) -> str:
    """``text`` with every marked table replaced by what its source gives now."""
    return BLOCK.sub(lambda m: m.group(1) + generate(m.group(2)) + "\n" + m.group(4), text)


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/tables.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs")
    args = parser.parse_args(argv)
    stale = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "differ" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "docs tables: up to date")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
