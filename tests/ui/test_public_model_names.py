"""On a public deployment a name typed as a path tells nothing about the server's directories, and the
shared status line holds one entry per model, whatever spelling visitors used."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest

from toolformer_app import config, models
from toolformer_app.ui import runtime

JOB = "ft-20260101-000000-abcd"


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")
    monkeypatch.setenv("TOOLFORMER_ALLOWED_MODELS", "smollm2-135m")
    monkeypatch.setattr(runtime, "_status", {})
    monkeypatch.setattr(runtime, "_labels", {})
    monkeypatch.setattr(runtime, "_keys", {})
    monkeypatch.setattr(models, "_CACHE", OrderedDict())
    out = config.data_dir() / "finetuned" / JOB
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")  # not loadable: transformers fails on it
    (out / "toolformer_card.json").write_text(json.dumps({"calling": {"call_threshold": 0.25}}))
    return out


def _refusal(name: str) -> str:
    with pytest.raises(models.ModelLoadError) as info:
        runtime.get_model(name)
    return str(info.value)


def test_a_dotdot_path_gets_the_one_refusal_whether_its_first_part_exists(public, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a refused name must not be loaded"))
    root = config.data_dir().resolve()
    (tmp_path / "exists").mkdir()
    texts = {_refusal(f"{tmp_path / 'exists'}/../{root.name}/finetuned/{JOB}"),
             _refusal(f"{tmp_path / 'missing'}/../{root.name}/finetuned/{JOB}"),
             _refusal(f"{root}/finetuned/../finetuned/{JOB}")}
    assert len(texts) == 1 and "not available here" in texts.pop()


def test_every_failure_of_a_path_in_the_data_dir_gets_the_one_refusal(public):
    root = config.data_dir().resolve()
    (root / "gen" / "notamodel").mkdir(parents=True)
    texts = {_refusal(str(root / "finetuned" / JOB)),  # exists, fails to load
             _refusal(str(root / "gen" / "notamodel")),  # exists, no config.json
             _refusal(str(root / "gen" / "missing"))}  # does not exist
    assert len(texts) == 1 and "not available here" in texts.pop()
    assert "failed" not in runtime.status_line()


def test_cards_are_read_only_for_names_the_deployment_offers(public, tmp_path):
    from toolformer_app.ui import chat

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "toolformer_card.json").write_text(json.dumps({"calling": {"call_threshold": 0.3}}))
    assert chat.threshold_default(str(elsewhere)) == 0.0  # off the data dir: not read, so nothing is told
    assert chat.threshold_default(JOB) == 0.25


def test_the_status_line_keys_a_finetune_by_its_model_and_records_no_typed_failure(public, monkeypatch):
    monkeypatch.setattr(models, "_load_uncached", lambda source, dev, dtype: (object(), object()))
    runtime._set_status("smollm2-135m", "ready")
    root = config.data_dir().resolve()
    spellings = [JOB, str(root / "finetuned" / JOB), str(root / "finetuned" / JOB) + "/",
                 str(root / "finetuned" / ".." / "finetuned" / JOB)]
    for name in spellings[:3]:
        runtime.get_model(name)
    with pytest.raises(models.ModelLoadError):
        runtime.get_model(spellings[3])  # the fourth spelling is refused, and not shown as failed
    monkeypatch.setattr(models, "_load_uncached", lambda *a: (_ for _ in ()).throw(OSError("torn")))
    models._CACHE.clear()
    with pytest.raises(models.ModelLoadError, match="not available here"):
        runtime.get_model(str(root / "finetuned" / JOB))  # a typed path that fails now
    line = runtime.status_line()
    assert line.count(JOB) == 1 and "`smollm2-135m` ready" in line and "failed" not in line, line
    assert f"`{JOB}` unloaded" in line and str(root) not in line  # its earlier load, since evicted by clear()
