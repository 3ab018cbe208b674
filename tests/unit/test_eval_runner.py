"""The evaluation runner on a tiny model built here: forced calculator calls, modes, outputs, perplexity, CLI."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from toolformer_app.evaluation import perplexity, predict, report, runner
from toolformer_app.evaluation.config import EvalConfig
from toolformer_app.evaluation.report import format_table
from toolformer_app.evaluation.runner import evaluate
from toolformer_app.tools.calculator import Calculator

MATH = [  # x q "The answer is" (Appendix C), with non-integer answers
    ("Maria has 12 apples and buys 7 more.", "How many apples does she have?", "12 + 7", "19"),
    ("5 bottles of water cost 138 dollars.", "How much does one bottle cost?", "138 / 5", "27.6"),
    ("Tom shares 7 liters of juice among 3 jugs.", "How many liters are in each jug?", "7 / 3", "2.33"),
    ("A ticket costs 12.5 dollars.", "How much do 4 tickets cost?", "12.5 * 4", "50"),
    ("Omar had 58 cards, got 17 and gave away 9.", "How many cards does he have?", "58 + 17 - 9", "66"),
]
ANSWER_IS = "The answer is"


class ForcedCalculator(torch.nn.Module):
    """Wraps the tiny LM and boosts the next token of a script, read from the text so far.

    After "The answer is" it writes " [Calculator(<the problem's expression>) ->", and after the
    tool's " r]" it copies " r" and ends. If " [" is masked (tools disabled) it says " unknown".
    """

    def __init__(self, inner: torch.nn.Module, tok, expressions: dict[str, str]):
        super().__init__()
        self.inner, self.tok, self.expressions = inner, tok, expressions
        self.config, self.generation_config = inner.config, inner.generation_config
        self.history: list[int] = []
        self.fallback = tok.encode(" unknown", add_special_tokens=False)[0]

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def _next(self, text: str) -> list[tuple[int, float]]:
        prompt_end = text.rfind(ANSWER_IS)
        if prompt_end < 0:
            return []
        gen = text[prompt_end + len(ANSWER_IS):]
        expr = next(e for p, e in self.expressions.items() if p in text)
        target = f" [Calculator({expr}) ->"
        if gen == "":
            return [(self.tok.encode(" [", add_special_tokens=False)[0], 1000.0), (self.fallback, 500.0)]
        if len(gen) < len(target) and target.startswith(gen):
            return [(self.tok.encode(target[len(gen):], add_special_tokens=False)[0], 1000.0)]
        m = re.fullmatch(r" \[Calculator\(.*?\) -> (.*?)\](.*)", gen, re.S)
        if m:
            wanted, after = " " + m[1], m[2]
            if len(after) < len(wanted) and wanted.startswith(after):
                return [(self.tok.encode(wanted[len(after):], add_special_tokens=False)[0], 1000.0)]
        return [(self.tok.eos_token_id, 1000.0)]

    def forward(self, input_ids, cache=None, **kwargs):
        if cache is None or cache.get_seq_length() == 0:
            self.history = []
        self.history += input_ids[0].tolist()
        out = self.inner(input_ids=input_ids, cache=cache, **kwargs)
        for token, boost in self._next(self.tok.decode(self.history)):
            out.logits[0, -1, token] += boost
        return out


@pytest.fixture()
def math_suite(tmp_path):
    path = tmp_path / "five.jsonl"
    rows = [{"prompt": f"{x} {q} {ANSWER_IS}", "answer": a, "kind": "math"} for x, q, _, a in MATH]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def forced(tiny_model):
    model, tok = tiny_model
    return ForcedCalculator(model, tok, {x: e for x, _, e, _ in MATH}), tok


def _run(forced, path, **cfg):
    model, tok = forced
    # ForcedCalculator reads one row's history: items one at a time
    config = EvalConfig(suites=(), suite_files=(str(path),), max_new_tokens=24, batch_size=1, **cfg)
    return evaluate(config=config, model=model, tokenizer=tok, tools={"Calculator": Calculator()}, progress=False)


def test_forced_calculator_scores_100_with_tools_and_0_disabled(forced, math_suite, tmp_path):
    model, tok = forced
    results = evaluate(config=EvalConfig(suites=(), suite_files=(str(math_suite),), max_new_tokens=24, batch_size=1),
                       model=model, tokenizer=tok, tools={"Calculator": Calculator()}, progress=False,
                       out_dir=tmp_path / "out")
    five = results["suites"]["five"]
    assert five["tools"]["accuracy"] == 1.0 and five["tools"]["n"] == 5
    assert five["tools"]["call_rate"]["Calculator"] == 1.0 and five["tools"]["call_rate"]["any"] == 1.0
    assert five["disabled"]["accuracy"] == 0.0
    assert five["disabled"]["call_rate"]["any"] == 0.0
    d = five["tools"]["diagnostics"]
    assert d["with_call"] == d["call_ok"] == d["call_result_correct"] == d["call_result_used"] == 5
    for mode in ("base", "tools", "disabled"):
        assert {"n", "accuracy", "ci_low", "ci_high", "call_rate", "perplexity"} <= set(five[mode])
    assert five["tools"]["ci_low"] == pytest.approx(0.5655, abs=1e-4) and five["tools"]["ci_high"] == 1.0

    # the outputs: results.json (the same dict), predictions.jsonl (15 rows), table.md
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 15
    tools_rows = [r for r in rows if r["mode"] == "tools"]
    third = next(r for r in tools_rows if "7 / 3" in r["calls"][0]["input"])
    assert third["output"] == " [Calculator(7 / 3) -> 2.33] 2.33" and third["prediction"].strip() == "2.33"
    assert third["correct"] and third["call_result_used"]
    assert all(r["prediction"].strip() == "unknown" for r in rows if r["mode"] == "disabled")
    table = (out / "table.md").read_text()
    assert "| tools (k=10) | 100.0 [56.6, 100.0] |" in table and "| disabled | 0.0 [0.0, 43.4] |" in table

    # a calibrated run's table names its threshold, not the k it did not use
    calibrated = dict(results, config=dict(results["config"], call_threshold=0.024339))
    assert "| tools (p(\" [\") >= 0.024339) | 100.0 [56.6, 100.0] |" in format_table(calibrated)


def test_same_seed_same_table_and_k_sweep(forced, math_suite):
    a = _run(forced, math_suite, ks=(0, 1, 10))
    b = _run(forced, math_suite, ks=(0, 1, 10))
    assert format_table(a) == format_table(b)
    sweep = a["sweep"]["five"]
    assert set(sweep) == {"0", "1", "10"}
    assert sweep["0"]["accuracy"] == 0.0 and sweep["0"]["call_rate"]["any"] == 0.0  # k=0: never calls
    assert sweep["1"]["accuracy"] == 1.0  # " [" is the argmax here, so k=1 calls too
    assert "Effect of k" in format_table(a)


def test_modes_subset_and_base_is_plain_greedy(forced, math_suite):
    res = _run(forced, math_suite, modes=("base",))
    assert set(res["suites"]["five"]) == {"base"}
    # the base model decodes plainly: " [" is not masked, but no tool runs and nothing is injected
    assert res["suites"]["five"]["base"]["call_rate"]["any"] == 0.0
    model, tok = forced
    text = predict.plain_greedy(model, tok, f"{MATH[0][0]} {MATH[0][1]} {ANSWER_IS}", 24)
    assert text == " [Calculator(12 + 7) ->"


def test_perplexity_matches_the_model_loss(tiny_model):
    model, tok = tiny_model
    texts = ["The quick brown fox jumps over the lazy dog.", "Nairobi is the capital of Kenya [citation] today."]
    res = perplexity.perplexity(model, tok, texts, max_tokens=64, batch_size=2, masked_token_id=933)
    nll, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok.encode(t)])
            loss = model(input_ids=ids, labels=ids).loss
            nll += float(loss) * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    assert res["tokens"] == count
    assert res["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    # renormalising p(" [") away can only raise each token's probability
    assert res["perplexity_masked"] <= res["perplexity"]
    # a fixed token budget
    assert perplexity.perplexity(model, tok, texts, max_tokens=5)["tokens"] == 8


def test_summarize_counts_tools_and_malformed_calls():
    rows = [
        {"correct": True, "calls": [{"tool": "calculator", "ok": True}], "call_result_correct": True,
         "call_result_used": True},
        {"correct": False, "calls": [{"tool": "", "ok": False}], "call_result_correct": False,
         "call_result_used": None},
        {"correct": False, "calls": []},
        {"correct": True, "calls": []},
    ]
    s = report.summarize(rows)
    assert s["n"] == 4 and s["accuracy"] == 0.5
    assert s["call_rate"]["Calculator"] == 0.25 and s["call_rate"]["other"] == 0.25 and s["call_rate"]["any"] == 0.5
    assert s["diagnostics"]["correct_with_call"] == 1 and s["diagnostics"]["correct_without_call"] == 1
    assert report.result_used("number", "27.6", " 27.6 dollars") is True
    assert report.result_used("weekday", "Today is Monday, January 30, 2023.", " Tuesday") is False
    assert report.result_used("words", "a long snippet of more than five words here", " a") is None


def test_base_model_from_card(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    assert runner.base_model_name(str(ckpt)) == str(ckpt)  # no card: the model is its own base
    (ckpt / "toolformer_card.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
    assert runner.base_model_name(str(ckpt)) == "smollm2-135m"
    (ckpt / "toolformer_card.json").write_text(json.dumps({"base_model": str(tmp_path / "gone")}))
    assert runner.base_model_name(str(ckpt)) == str(ckpt)  # an unloadable base: fall back to the model


def test_the_runner_still_offers_the_names_its_parts_define():
    # The UI, the CLI and users import these from ``runner``; they are defined in its parts.
    from toolformer_app.evaluation import config

    homes = {config: ("EvalConfig", "EvaluationCancelled", "MODES"),
             predict: ("Prediction", "plain_greedy", "predict_with_tools", "predict_batch"),
             perplexity: ("perplexity",),
             report: ("format_table", "sweep_rows", "summarize", "result_used", "score_prediction",
                      "wrong_tool_rate", "WRONG_TOOLS", "TOOL_COLUMNS", "write_outputs")}
    for module, names in homes.items():
        for name in names:
            assert name in runner.__all__ and getattr(runner, name) is getattr(module, name), name
    assert all(hasattr(runner, name) for name in runner.__all__)


# -- the CLI: bad input is one clear line and exit 2, before any model is loaded -----------------------
@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a", "answer": "1", "kind": "math"}\n{"prompt": oops}\n', r"bad\.jsonl:2: not valid JSON"),
        ('{"prompt": "a", "answer": "1", "kind": "poetry"}\n', r"bad\.jsonl:1: unknown kind 'poetry'"),
        ("", r"bad\.jsonl: empty suite"),
    ],
)
def test_cli_bad_suite_exits_2(tmp_path, capsys, content, message):
    from toolformer_app.cli import main

    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    code = main(["eval", "--model", "no-such-model", "--suite-file", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert re.search(message, err) and err.startswith("error: ") and len(err.splitlines()) == 1


def test_cli_bad_arguments(tmp_path, capsys):
    from toolformer_app.cli import main

    assert main(["eval", "--model", "x", "--suites", "poetry", "--out", str(tmp_path)]) == 2
    assert "unknown suite 'poetry'" in capsys.readouterr().err
    assert main(["eval", "--model", "x", "--suites", "math", "--limit", "0", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["eval", "--ks", "1,a"])


def test_sweep_rows_and_plots_give_accuracy_and_calls_per_k_and_threshold(tmp_path) -> None:
    import json

    from toolformer_app.evaluation.report import sweep_rows
    from toolformer_app.ui.evaluate import sweep_plots

    def e(acc, calls):
        return {"accuracy": acc, "call_rate": {"any": calls}}

    results = {"sweep": {"math": {"1": e(0.0, 0.0), "10": e(0.3, 0.95)}},
               "threshold_sweep": {"plain": {"0.05": {"accuracy": None, "call_rate": {"any": 0.1}}}}}
    rows = sweep_rows(results)
    assert {"sweep": "k", "value": 10.0, "suite": "math", "metric": "calls", "percent": 95.0} in rows
    assert [r["metric"] for r in rows if r["sweep"] == "threshold"] == ["calls"]  # plain has no accuracy
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    k_plot, t_plot = sweep_plots(str(path))
    assert len(k_plot["value"]) == 4 and k_plot["visible"] and len(t_plot["value"]) == 1
    assert not sweep_plots(None)[0]["visible"] and not sweep_plots(str(tmp_path / "nope.json"))[1]["visible"]


def test_batched_eval_equals_one_item_at_a_time(tiny_model, tmp_path):
    """Every mode decoded in batches gives the predictions of one item at a time (float32): calls at
    different steps, rows stopped early when their score is decided, rows joining as others end."""
    from tests.unit.test_batched import PositionScripted, scripts

    model, tok = tiny_model
    items = [(f"{x} {q} {ANSWER_IS}", a) for x, q, _, a in MATH]
    calls = [" [Calculator(12 + 7) -> 19] 19", "", " about [Calculator(7 / 3) ->", " 50 dollars.",
             " so we have [Calculator(58 + 17 - 9) ->"]
    scripted = PositionScripted(model, scripts(tok, [(p, c) for (p, _), c in zip(items, calls, strict=True)]))
    path = tmp_path / "five.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "answer": a, "kind": "math"}) + "\n" for p, a in items),
                    encoding="utf-8")
    runs = {}
    for batch_size in (1, 2, 16):
        cfg = EvalConfig(suites=(), suite_files=(str(path),), max_new_tokens=20, batch_size=batch_size)
        evaluate(config=cfg, model=scripted, tokenizer=tok, tools={"Calculator": Calculator()}, progress=False,
                 out_dir=tmp_path / str(batch_size))
        runs[batch_size] = (tmp_path / str(batch_size) / "predictions.jsonl").read_text()
    rows = [json.loads(line) for line in runs[1].splitlines()]
    assert sum(bool(r["calls"]) for r in rows if r["mode"] == "tools") >= 3
    assert runs[2] == runs[1] and runs[16] == runs[1]


def test_offset_gives_the_dev_split_that_reported_figures_never_use():
    from toolformer_app.evaluation.runner import load_accuracy_suites
    from toolformer_app.evaluation.suites import DEV_OFFSET, SIZES, SuiteError

    test = dict(load_accuracy_suites(EvalConfig(suites=("math", "facts_plain"), limit=DEV_OFFSET)))
    dev = dict(load_accuracy_suites(EvalConfig(suites=("math", "facts_plain"), limit=5, offset=DEV_OFFSET)))
    assert [it.id for it in dev["math"]] == [f"math-{i:04d}" for i in range(DEV_OFFSET, DEV_OFFSET + 5)]
    for name in ("math", "facts_plain"):
        assert not {it.id for it in dev[name]} & {it.id for it in test[name]}
    rest = dict(load_accuracy_suites(EvalConfig(suites=("math",), offset=DEV_OFFSET)))["math"]
    assert len(rest) == SIZES["math"] - DEV_OFFSET
    with pytest.raises(SuiteError, match="leaves no item"):
        load_accuracy_suites(EvalConfig(suites=("math",), offset=SIZES["math"]))
    with pytest.raises(SuiteError, match="offset"):
        EvalConfig(suites=("math",), offset=-1).validate()


def test_table_skips_a_suite_that_ran_in_no_mode():
    # `eval --suites math,plain --modes base`: plain is decoded with tools only, so it has no entry
    entry = {"n": 4, "accuracy": 0.5, "ci_low": 0.15, "ci_high": 0.85, "call_rate": {"any": 0.0}}
    results = {"model": "m", "base_model": "m", "config": {"top_k_call": 10},
               "suites": {"math": {"base": entry}, "plain": {}}}
    table = format_table(results)
    assert "| math (n=4) |" in table and "plain" not in table.split("\n\n")[1]


def test_plain_is_decoded_only_with_tools(forced):
    # `plain` is scored by its call rate alone; base and disabled decoding cannot call, so they are not run
    model, tok = forced
    cfg = EvalConfig(suites=("plain",), limit=2, max_new_tokens=8, batch_size=2)
    res = evaluate(config=cfg, model=model, tokenizer=tok, tools={"Calculator": Calculator()}, progress=False)
    assert cfg.modes == ("base", "tools", "disabled")
    assert set(res["suites"]["plain"]) == {"tools"}
    assert res["suites"]["plain"]["tools"]["n"] == 2
    assert [t for t in res["timing_s"] if t.startswith("plain/")] == ["plain/tools/k=10"]
