"""Public-deployment settings: validated once at start-up, a bounded model cache, a model allow-list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolformer_app import config, models

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_loads(monkeypatch):
    """models.load without weights: records what would be loaded."""
    loads: list[str] = []
    monkeypatch.setattr(models, "_load_uncached", lambda source, dev, dtype: loads.append(source) or (object(), object()))
    models.free()
    yield loads
    models.free()


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_spellings_of_one_directory_share_one_cached_model(tmp_path, fake_loads, monkeypatch):
    d = _model_dir(tmp_path / "runs" / "models" / "m1")
    monkeypatch.chdir(tmp_path)
    first = models.load(str(d), device="cpu")
    for spelling in (f"{d}//", f"{tmp_path}//runs/models/m1", "runs/models/m1", "./runs//models/m1/"):
        assert models.load(spelling, device="cpu") is first
    assert len(fake_loads) == 1 and models.cached_models() == [str(d.resolve())]


def test_the_cache_keeps_the_n_most_recently_used_models_and_frees_on_request(tmp_path, fake_loads, monkeypatch):
    monkeypatch.setenv("TOOLFORMER_MODEL_CACHE_SIZE", "2")
    a, b, c = (_model_dir(tmp_path / n) for n in "abc")
    models.load(str(a), device="cpu")
    models.load(str(b), device="cpu")
    models.load(str(a), device="cpu")  # a is now the most recently used
    models.load(str(c), device="cpu")  # b goes
    assert models.cached_models() == [str(a), str(c)]
    models.load(str(b), device="cpu")
    assert len(fake_loads) == 4
    assert models.free(f"{c}//") == 1 and models.cached_models() == [str(b)]
    assert models.free("gemma3-270m") == 0  # not loaded: nothing freed, nothing converted
    assert models.free() == 1 and models.cached_models() == []


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_a_bad_setting_is_one_line_at_start_up_of_the_app_and_the_cli(value):
    env = {**os.environ, "TOOLFORMER_MAX_TEXT_CHARS": value}
    argvs = [[sys.executable, "app.py"]]
    if value == "abc":  # the CLI imports every command: once is enough
        argvs.append([sys.executable, "-m", "toolformer_app", "tool", "Calculator", "1+1"])
    for argv in argvs:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0, argv
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "TOOLFORMER_MAX_TEXT_CHARS" in lines[0] and "Traceback" not in proc.stderr


def test_good_settings_pass_the_start_up_check(monkeypatch):
    monkeypatch.setenv("TOOLFORMER_MAX_TEXT_CHARS", " 5000 ")
    monkeypatch.setenv("TOOLFORMER_MAX_EVAL_ITEMS", "7")
    config.check_settings()
    assert config.max_text_chars() == 5000 and config.max_eval_items() == 7 and config.model_cache_size() == 2


def test_on_a_space_only_presets_hub_ids_and_data_dir_models_are_accepted_with_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    data = Path(os.environ["TOOLFORMER_DATA_DIR"])
    inside = _model_dir(data / "finetuned" / "ft-1")
    outside = _model_dir(tmp_path / "secret-model")
    (tmp_path / "not-a-model").mkdir()
    assert models.check_allowed("smollm2-135m") == "smollm2-135m"
    assert models.check_allowed("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert models.check_allowed(str(inside)) == str(inside)
    messages = set()
    for name in (str(outside), str(tmp_path / "not-a-model"), str(tmp_path / "missing"), "/etc", "/", "~",
                 "../../etc", str(data), str(data / "missing"), str(data / ".." / "secret-model"), "a/b/c",
                 "weird\x00name"):
        with pytest.raises(models.ModelLoadError) as err:
            models.check_allowed(name)
        messages.add(str(err.value))
    assert len(messages) == 1 and "not available here" in messages.pop()
    monkeypatch.setenv("TOOLFORMER_ALLOWED_MODELS", "gemma3-270m")
    with pytest.raises(models.ModelLoadError, match="choose gemma3-270m"):
        models.check_allowed("smollm2-135m")
    assert models.check_allowed("gemma3-270m") == "gemma3-270m"
    monkeypatch.delenv("SPACE_ID")
    assert models.check_allowed(str(outside)) == str(outside)  # a laptop: any directory
