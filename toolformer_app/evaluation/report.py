"""The report of a run: each prediction scored (a predictions.jsonl row), each mode summed up (accuracy with a
95% Wilson CI, call rates per tool, why calls helped or not), the results files and the Markdown tables
(Table 9's sweeps over k and over a call threshold included).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from toolformer_app.evaluation import scoring
from toolformer_app.evaluation import suites as suite_lib
from toolformer_app.evaluation.config import MODES, paper_top_k
from toolformer_app.evaluation.predict import Prediction
from toolformer_app.evaluation.suites import Item

TOOL_COLUMNS = suite_lib.ALL_TOOLS


# -- one prediction ---------------------------------------------------------------------------------
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
                   else f"tools (k={config.get('top_k_call', paper_top_k())})")
    labels = {"base": f"base ({results.get('base_model')})", "tools": tools_label, "disabled": "disabled"}
    clause = (results.get("config") or {}).get("clause_inputs")
    written = f"; inputs written by the decoder (the clause so far): {', '.join(clause)}" if clause else ""
    lines = [f"Model: {results.get('model')}; clock {results.get('clock')}{written}; accuracy in % with 95% Wilson "
             "CI.", ""]
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
