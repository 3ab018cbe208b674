"""`eval` end to end on the real default model: three items per suite, the three modes, perplexity."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_eval_cli_real_model(real_model, tmp_path, capsys):
    from toolformer_app.cli import main

    out = tmp_path / "eval"
    code = main(["eval", "--model", "smollm2-135m", "--suites", "math,dates,perplexity", "--limit", "3",
                 "--out", str(out), "--quiet"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| base (smollm2-135m) |" in table and "| tools (k=10) |" in table and "| disabled |" in table
    results = json.loads((out / "results.json").read_text())
    for suite in ("math", "dates", "perplexity"):
        for mode in ("base", "tools", "disabled"):
            entry = results["suites"][suite][mode]
            assert {"n", "accuracy", "ci_low", "ci_high", "call_rate", "perplexity"} <= set(entry)
            assert entry["n"] == 3
    assert results["suites"]["math"]["disabled"]["call_rate"]["any"] == 0.0
    ppl = results["suites"]["perplexity"]
    # the default model is its own base: the same forward pass, with and without the " [" mask
    assert 1 < ppl["disabled"]["perplexity"] <= ppl["base"]["perplexity"] < 200
    assert ppl["tools"]["perplexity"] is None
    rows = (out / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 2 * 3 * 3
    assert (out / "table.md").read_text().strip() == table.strip()
