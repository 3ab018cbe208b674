"""The Finetune tab on a public deployment: a damaged job store, a data dir that cannot be written, and
job errors and logs, none of which may stop the app or show a server path."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import gradio as gr
import pytest

from tests.ui import helpers
from toolformer_app import config
from toolformer_app.training import FinetuneConfig, jobs
from toolformer_app.ui import finetune

_ABS = ("/tmp/", "/work/", "/usr/", "/home/", "/srv/", "/root/", "site-packages")


def _no_server_path(text: str) -> bool:
    return str(config.data_dir().resolve()) not in text and sys.executable not in text and not any(
        p in text for p in _ABS)


@pytest.fixture
def quiet(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: said.append(msg))
    monkeypatch.setattr(gr, "Info", lambda msg, *a, **k: said.append(msg))
    return said


def test_the_app_starts_on_a_damaged_job_store_and_the_tab_says_so(monkeypatch):
    from toolformer_app.ui import build_demo

    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")
    monkeypatch.setenv("TOOLFORMER_ADMIN_TOKEN", "s3cret")
    damaged = os.urandom(4096)
    jobs.store_path().write_bytes(damaged)
    jobs._SCHEMA_READY.clear()
    demo = build_demo()  # Chat and Annotate must not go down with the store
    guard = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "finetune-guard")
    assert "job store" in guard.value and "cannot be read" in guard.value and _no_server_path(guard.value)
    assert finetune.job_choices() == [] and finetune.jobs_frame().empty
    status = finetune.job_view(None)[0]
    assert "cannot be read" in status and _no_server_path(status)
    with pytest.raises(gr.Error) as info:
        finetune.launch("s3cret", "smollm2-135m", finetune.EXAMPLE_ID, None, 0.3, True, None, 1, 1, 1, 1, 64, 1,
                        0.1)
    assert "cannot be read" in str(info.value) and _no_server_path(str(info.value))
    with pytest.raises(gr.Error, match="cannot be read"):
        finetune.resume("s3cret", "ft-x")
    assert jobs.store_path().read_bytes() == damaged


def test_job_errors_and_the_log_tail_show_no_server_path(tmp_path):
    model_dir = config.data_dir().resolve().parent / "models" / "base"  # a model launched from the CLI by path
    job = jobs.create_job(FinetuneConfig(data=str(finetune.EXAMPLE_DATASET), max_steps=2, model=str(model_dir)))
    data_file = config.data_dir().resolve() / "datasets" / "upload-1" / "dataset.jsonl"
    jobs._spawn(job, resume=False, launcher=[sys.executable, "-c", "pass"])  # writes the command line
    site = Path(shutil.__file__).parent / "site-packages" / "transformers" / "x.py"
    with open(job.log_path, "a", encoding="utf-8") as log:
        log.write(f"{site}:12: UserWarning: something\n  File \"{site}\", line 3\n")
    jobs.wait_job(job.id, timeout=60)
    jobs._update(job.id, status="failed", error=f"data file {data_file} does not exist")
    status, _, _, _, log = finetune.job_view(job.id)
    assert "datasets/upload-1/dataset.jsonl" in status and "x.py:12: UserWarning" in log and "`base`" in status
    assert "-m toolformer_app finetune" in log
    assert _no_server_path(status) and _no_server_path(log), (status, log)
    frame = finetune.jobs_frame().to_csv()
    assert "does not exist" in frame and _no_server_path(frame)


def test_a_data_dir_that_cannot_be_written_gives_one_line_without_its_path(quiet, monkeypatch):
    root = config.data_dir()
    (root / "datasets").write_text("a file where the folder should be")  # writes under it fail
    upload = root.parent / "up.jsonl"
    shutil.copyfile(finetune.EXAMPLE_DATASET, upload)
    run = helpers.run()
    calls = [lambda: finetune.upload_dataset(str(upload), None),
             lambda: __import__("toolformer_app.ui.filter", fromlist=["x"]).export_dataset(run, 0.0),
             lambda: finetune.launch("", "smollm2-135m", finetune.CURRENT, run, 0.0, True, None, 1, 1, 1, 1, 64, 1,
                                     0.1)]
    for call in calls:
        with pytest.raises(gr.Error) as info:
            call()
        message = str(info.value)
        assert "Could not write to the data dir" in message and helpers.is_one_line_error(message)
        assert str(root.resolve()) not in message and "Errno" not in message
    (root / "datasets").unlink()
    (root / "jobs").write_text("")  # the job's own folder cannot be made
    with pytest.raises(gr.Error) as info:
        finetune.launch("", "smollm2-135m", finetune.EXAMPLE_ID, None, 0.3, True, None, 1, 1, 1, 1, 64, 1, 0.1)
    assert "Could not write to the data dir" in str(info.value) and str(root.resolve()) not in str(info.value)
