"""What an anonymous visitor's calls leave on a public deployment stays bounded: evaluation folders are kept
under a quota, and Gradio's cache of uploaded and served files is cleaned (README "Running it publicly")."""

from __future__ import annotations

import os
import time
from pathlib import Path

import gradio as gr


def _fake_evaluation(monkeypatch) -> None:
    from toolformer_app.evaluation import runner
    from toolformer_app.ui import runtime

    def fake(name, *, config, out_dir, progress):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "results.json").write_text("{}")
        return {"suites": {}, "timing_s": {"total": 1.0}}

    monkeypatch.setattr(runtime, "get_model", lambda name: (None, None))
    monkeypatch.setattr(runner, "evaluate", fake)
    monkeypatch.setattr(runner, "format_table", lambda results: "table")
    monkeypatch.setattr(gr, "Warning", lambda *a, **k: None)


def test_a_public_deployment_keeps_only_the_newest_evaluation_folders(monkeypatch):
    from toolformer_app import config
    from toolformer_app.ui import evaluate

    _fake_evaluation(monkeypatch)
    evals = config.data_dir() / "evals"
    old = time.time() - 3600
    for i in range(evaluate.MAX_PUBLIC_EVALS + 5):  # earlier anonymous runs
        d = evals / f"20260101-0000{i:02d}"
        d.mkdir(parents=True)
        os.utime(d, (old + i, old + i))
    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")
    *_, (table, results) = list(evaluate.run_evaluation("smollm2-135m", ["math"], ["base"], 1, 10))
    kept = sorted(p.name for p in evals.iterdir())
    assert len(kept) == evaluate.MAX_PUBLIC_EVALS and Path(results).parent.name in kept
    assert "20260101-000000" not in kept  # the oldest went first

    monkeypatch.delenv("SPACE_ID")  # off a public deployment nothing is removed
    time.sleep(1.1)  # a new folder name (one per second)
    list(evaluate.run_evaluation("smollm2-135m", ["math"], ["base"], 1, 10))
    assert len(list(evals.iterdir())) == evaluate.MAX_PUBLIC_EVALS + 1


def test_gradios_cache_of_uploaded_and_served_files_is_cleaned():
    from toolformer_app.ui import build_demo
    from toolformer_app.ui.blocks import CACHE_CLEANUP

    demo = build_demo()
    assert demo.delete_cache == CACHE_CLEANUP and CACHE_CLEANUP[1] <= 86400
