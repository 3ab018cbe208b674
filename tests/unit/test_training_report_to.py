"""`finetune --report-to none|tensorboard|trackio`: passed to HF Trainer's report_to; none stays offline-safe."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from toolformer_app.cli import build_parser
from toolformer_app.training import trainer as tr
from toolformer_app.training.cli import config_from_args
from toolformer_app.training.options import FinetuneConfig, TrainingInputError, validate_hyperparameters


def test_flag_reaches_the_config_and_none_is_the_default():
    args = build_parser().parse_args(["finetune", "--data", "d.jsonl", "--report-to", "trackio"])
    assert config_from_args(args).report_to == "trackio"
    assert config_from_args(build_parser().parse_args(["finetune", "--data", "d.jsonl"])).report_to == "none"


def test_unknown_tracker_and_missing_package_are_one_line_errors(monkeypatch):
    with pytest.raises(TrainingInputError, match="report_to must be one of none, tensorboard, trackio"):
        validate_hyperparameters(FinetuneConfig(report_to="wandb"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    with pytest.raises(TrainingInputError, match="pip install trackio"):
        validate_hyperparameters(FinetuneConfig(report_to="trackio"))


@pytest.fixture
def tiny_job(tiny_model, tmp_path):
    model, tok = tiny_model
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    data = tmp_path / "cstar.jsonl"
    data.write_text("".join(json.dumps({"text": f"{a} and {a} make {2 * a} [Calculator({a} + {a}) -> {2 * a}] {2 * a}."})
                            + "\n" for a in range(4)))

    def run(report_to: str):
        cfg = FinetuneConfig(data=str(data), model=str(tmp_path / "tiny"), out_dir=str(tmp_path / f"out-{report_to}"),
                             max_steps=2, batch_size=2, max_length=48, eval_fraction=0, save_every=1,
                             warmup_ratio=0.0, memory_check=False, report_to=report_to)
        seen = {}
        original = tr._callbacks

        def spy(events, job_dir, stop, on_checkpoint):
            seen["job_dir"] = job_dir
            return original(events, job_dir, stop, on_checkpoint)

        tr._callbacks = spy
        try:
            tr.run_finetune(cfg, tmp_path / f"job-{report_to}", job_id=f"job-{report_to}")
        finally:
            tr._callbacks = original
        return seen["job_dir"]

    return run


def test_none_reports_to_no_tracker(tiny_job, monkeypatch):
    import transformers

    captured = {}
    original = transformers.Trainer.__init__

    def spy(self, *args, **kwargs):
        captured["report_to"] = kwargs["args"].report_to
        original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "__init__", spy)
    tiny_job("none")
    assert captured["report_to"] == []


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_writes_event_files_in_the_job_dir(tiny_job):
    job_dir = tiny_job("tensorboard")
    assert list((job_dir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="trackio is not installed")
def test_trackio_logs_locally_into_the_data_dir(tiny_job, monkeypatch, tmp_path):
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    tiny_job("trackio")
    from toolformer_app import config

    assert os.environ["TRACKIO_DIR"] == str(config.data_dir() / "trackio")
    assert any((config.data_dir() / "trackio").rglob("*")), "trackio wrote nothing"
