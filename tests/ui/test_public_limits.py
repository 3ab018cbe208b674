"""Bounded work per visitor on a public deployment: evaluation sweeps, the queue, and uploads."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from toolformer_app.ui import runtime


@pytest.fixture
def warnings(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: seen.append(msg))
    monkeypatch.setattr(gr, "Info", lambda msg, *a, **k: None)
    return seen


@pytest.fixture
def evaluations(monkeypatch):
    """runner.evaluate stand-in recording each config it is given (the real one needs a model)."""
    from toolformer_app.evaluation import runner

    seen: list = []

    def fake(name, *, config, out_dir, progress):
        seen.append(config)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "results.json").write_text("{}")
        return {"suites": {}, "timing_s": {"total": 1.0}}

    monkeypatch.setattr(runtime, "get_model", lambda name: (None, None))
    monkeypatch.setattr(runner, "evaluate", fake)
    monkeypatch.setattr(runner, "format_table", lambda results: "table")
    return seen


def _run(ks: str = "", thresholds: str = "", limit: int = 20, suites=("math",)):
    from toolformer_app.ui import evaluate

    return list(evaluate.run_evaluation("smollm2-135m", list(suites), ["tools"], limit, 10, ks, thresholds))


def test_sweep_values_are_deduplicated_and_capped(evaluations, warnings, monkeypatch):
    from toolformer_app.ui.evaluate import MAX_SWEEP_VALUES

    monkeypatch.setenv("TOOLFORMER_MAX_EVAL_ITEMS", "1000")
    _run(ks=",".join(["3"] * 3000), limit=5)  # the probe's 3,000 values, one distinct
    assert evaluations[-1].ks == (3,) and evaluations[-1].limit == 5
    _run(ks=",".join(str(k) for k in range(50)), thresholds=",".join(f"0.0{i}" for i in range(1, 10)), limit=5)
    assert evaluations[-1].ks == tuple(range(MAX_SWEEP_VALUES))
    assert len(evaluations[-1].thresholds) == MAX_SWEEP_VALUES
    assert sum("only the first" in w for w in warnings) == 2


def test_items_times_sweep_values_times_suites_stay_within_the_eval_items_cap(evaluations, warnings, monkeypatch):
    monkeypatch.setenv("TOOLFORMER_MAX_EVAL_ITEMS", "20")
    _run(ks="0,1,3,10", limit=20, suites=("math", "dates"))
    config = evaluations[-1]
    assert config.limit * len(config.ks) * len(config.suites) <= 20 and config.limit == 2
    assert any("TOOLFORMER_MAX_EVAL_ITEMS" in w for w in warnings)
    with pytest.raises(gr.Error, match="TOOLFORMER_MAX_EVAL_ITEMS"):  # not even one item per value fits
        _run(ks="0,1,2,3,4,5,6,7", thresholds="0.01,0.02,0.03", suites=("math", "dates"))
    assert len(evaluations) == 1  # refused before any work


@pytest.mark.parametrize("ks, thresholds", [("-5", ""), ("100000", ""), ("", "nan"), ("", "2"), ("a,b", "")])
def test_out_of_range_sweep_values_are_one_line_errors(evaluations, ks, thresholds):
    with pytest.raises(gr.Error):
        _run(ks=ks, thresholds=thresholds)
    assert not evaluations
