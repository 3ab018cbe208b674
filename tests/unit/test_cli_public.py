"""CLI paths hardened with the public profile: empty prompts, --out checks, file line numbers, closed pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from toolformer_app.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_chat_refuses_an_empty_prompt_before_loading_a_model(capsys, monkeypatch):
    from toolformer_app import models

    monkeypatch.setattr(models, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded a model")))
    for prompt in ("", "   \n", "\x01\x02", "\ud800"):  # control characters or a lone surrogate alone: empty
        assert main(["chat", prompt]) == 2
        assert capsys.readouterr().err.strip() == "error: the prompt is empty"


def test_generate_refuses_a_non_empty_out_that_is_not_a_generate_run(tmp_path, capsys):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "2 + 2 = 4."}) + "\n")
    out = tmp_path / "etc"
    out.mkdir()
    (out / "passwd").write_text("root:x:0:0\n")
    assert main(["generate", "--input", str(texts), "--out", str(out), "--model", "/nonexistent/model"]) == 2
    assert "is not empty and holds no previous `generate` run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["passwd"]
    (out / "config.json").write_text("not json")  # a config.json that is not ours is refused too
    assert main(["generate", "--input", str(texts), "--out", str(out), "--model", "/nonexistent/model"]) == 2
    assert "holds a run with other settings" in capsys.readouterr().err


def test_generate_names_skipped_rows_by_their_line_in_the_file(tmp_path, capsys):
    rows = [{"text": "one"}, {"text": "two"}, {"text": ""}, {"text": "four"}, {"text": "five"}, {}, {"text": " "},
            {"text": "eight"}]
    texts = tmp_path / "texts.JSONL"  # the extension in any case
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["generate", "--input", str(texts), "--out", str(tmp_path / "out"), "--model", "/nonexistent/model"])
    err = capsys.readouterr().err
    assert code == 2 and "/nonexistent/model" in err  # stops at the model, after reading the file
    assert [line for line in err.splitlines() if line.startswith("warning")] == [
        f'warning: skipped line {n}: no non-empty "text" field' for n in (3, 6, 7)]


def test_jobs_show_into_a_closed_pipe_prints_no_traceback(tmp_path, monkeypatch):
    env = {**os.environ, "TOOLFORMER_DATA_DIR": str(tmp_path / "data")}
    monkeypatch.setenv("TOOLFORMER_DATA_DIR", env["TOOLFORMER_DATA_DIR"])
    from toolformer_app.training import FinetuneConfig
    from toolformer_app.training.jobs import create_job

    job = create_job(FinetuneConfig(data=str(REPO / "assets" / "examples" / "calculator_dataset.jsonl")))
    proc = subprocess.Popen([sys.executable, "-m", "toolformer_app", "jobs", "show", job.id], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # what `| head` does once it has its lines
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
