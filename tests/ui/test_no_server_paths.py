"""No server path reaches a visitor: finetunes are offered by job id, saved runs by their place in the
data dir, and neither the API description nor the page's config holds the data dir's absolute path."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest


def _finished_job() -> tuple[str, Path]:
    """A succeeded finetune job whose model directory exists (no training: the test writes its files)."""
    from toolformer_app.training import FinetuneConfig, jobs
    from toolformer_app.ui import finetune

    job = jobs.create_job(FinetuneConfig(data=str(finetune.EXAMPLE_DATASET)))
    out = Path(job.out_dir)
    out.mkdir(parents=True)
    (out / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    (out / "toolformer_card.json").write_text(json.dumps({"calling": {"call_threshold": 0.25}}))
    jobs._update(job.id, status="succeeded")
    return job.id, out


def test_a_finetune_is_offered_by_its_job_id_and_that_id_loads_its_directory(monkeypatch):
    from toolformer_app import config, models
    from toolformer_app.ui import chat, finetune, runtime

    root = str(config.data_dir().resolve())
    job_id, out = _finished_job()
    values = [value for _, value in chat.model_choices()]
    assert job_id in values and not [v for v in values if root in v or v.startswith("/")], values
    assert models.resolve(job_id) == str(out) and models.call_threshold(job_id) == 0.25
    assert "finetuned/" + job_id in finetune.jobs_frame()["result or error"].tolist()
    assert root not in finetune.jobs_frame().to_csv()

    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")  # the public profile loads it by id too
    monkeypatch.setenv("TOOLFORMER_ALLOWED_MODELS", "smollm2-135m")
    assert models.check_allowed(job_id) == job_id and runtime._offered(job_id)
    assert job_id in [value for _, value in chat.model_choices()]
    runtime._set_status(job_id, "ready")
    assert f"`{job_id}` ready" in runtime.status_line() and root not in runtime.status_line()
    for name in ("ft-nope", "ft-../finetuned/" + job_id, "../" + job_id):
        assert models.finetune_dir(name) is None
        with pytest.raises(models.ModelLoadError, match="not available here"):
            models.check_allowed(name)


def test_saved_runs_are_listed_relative_to_the_data_dir_and_nothing_outside_it_loads(tmp_path):
    from toolformer_app import config
    from toolformer_app.ui import filter as loss_filter

    run = config.data_dir() / "gen" / "calc"
    run.mkdir(parents=True)
    cand = {"text_id": "1", "tool": "Calculator", "token_pos": 3, "char_pos": 5, "p_i": 0.4, "input": "1 + 1",
            "loss_reduction": 0.5}
    (run / "candidates.jsonl").write_text(json.dumps(cand) + "\n")
    assert loss_filter.saved_runs() == [("gen/calc", "gen/calc/candidates.jsonl")]
    assert len(loss_filter.load_saved_run("gen/calc/candidates.jsonl")["candidates"]) == 1
    outside = tmp_path / "elsewhere" / "candidates.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps(cand) + "\n")
    for value in (str(outside), "../elsewhere/candidates.jsonl", "gen/calc/../../../elsewhere/candidates.jsonl"):
        with pytest.raises(gr.Error, match="no such run in the data dir"):
            loss_filter.load_saved_run(value)


@pytest.mark.timeout(300)
def test_the_api_description_and_the_page_config_hold_no_server_path(tmp_path, monkeypatch):
    """Built after a finetune finished and a run was saved, so both are in the dropdowns' choices."""
    import httpx
    from gradio_client import Client

    from toolformer_app import config
    from toolformer_app.ui import build_demo, launch_kwargs

    monkeypatch.setenv("TOOLFORMER_DATA_DIR", str(tmp_path / "public-data"))  # absolute, like a Space's
    root = str(config.data_dir().resolve())
    _finished_job()
    (config.data_dir() / "gen").mkdir()
    (config.data_dir() / "gen" / "candidates.jsonl").write_text("")
    demo = build_demo()
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_kwargs())
    try:
        api = json.dumps(Client(url, verbose=False).view_api(print_info=False, return_format="dict"))
        page = httpx.get(url.rstrip("/") + "/config", timeout=30).text
    finally:
        demo.close()
    assert "ft-" in api  # the finetune is offered (by id)
    for where, text in (("view_api", api), ("/config", page)):
        assert root not in text and str(tmp_path) not in text, where


def test_the_user_tools_notice_names_the_folder_inside_the_data_dir(monkeypatch):
    from toolformer_app import config
    from toolformer_app.ui import user_tools

    tools = config.data_dir() / "tools"
    tools.mkdir()
    (tools / "broken.py").write_text("raise ValueError('no tool here')\n")
    monkeypatch.setattr(user_tools, "_errors", [])  # load() fills these in place: other tests keep theirs
    monkeypatch.setattr(user_tools, "_loaded", [])
    user_tools.load()
    user_tools._loaded[:] = ["Units"]
    notice = user_tools.notice()
    assert "`tools/` in the data dir: Units" in notice and "broken.py" in notice
    assert str(config.data_dir().resolve()) not in notice and str(config.data_dir()) not in notice
