"""The shared runtime: lazy model status, ZeroGPU wrapping, and `python app.py` itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest

from toolformer_app.ui import runtime

ROOT = Path(__file__).resolve().parents[2]


def test_model_bound_functions_are_wrapped_with_spaces_gpu_only_on_zero_gpu(monkeypatch):
    calls = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: calls.append(fn) or (lambda *a, **k: ("wrapped", fn(*a, **k)))
    fake.__spec__ = types.SimpleNamespace(name="spaces")  # find_spec needs a spec
    monkeypatch.setitem(sys.modules, "spaces", fake)

    def work(x):
        return x + 1

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert runtime.gpu_bound(work) is work
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert runtime.gpu_bound(work)(1) == ("wrapped", 2) and calls == [work]


def test_a_failed_background_load_shows_in_the_status_line(monkeypatch):
    monkeypatch.setattr(runtime, "_status", {})  # this process's status line, restored afterwards
    runtime.preload_in_background("no-such-model").join(timeout=30)
    line = runtime.status_line()
    assert "`no-such-model` failed:" in line and "\n" not in line
    assert not runtime.loading() or "loading" in line


@pytest.mark.parametrize("text", ["\x01\x02", "\x00\x00", " \u200b\t\n", "\ud800", "\ufffd\x7f"])
def test_control_characters_or_a_lone_surrogate_alone_are_an_empty_message(text):
    """As whitespace: nothing to continue from, so no model pass (chat $'\\x01\\x02' ran a 39 s generation)."""
    import gradio as gr

    with pytest.raises(gr.Error, match="empty"):
        runtime.checked_input(text, "The message is empty")


def test_lone_surrogates_are_replaced_before_the_tokenizer_sees_them():
    out = runtime.checked_input("2 + 2 = \ud800 and \udcff\x00", "empty")
    assert out == "2 + 2 = \ufffd and \ufffd"
    out.encode("utf-8")  # what the tokenizer and the response need


@pytest.fixture
def fake_loads(monkeypatch):
    """models.load with its real LRU cache, but a stand-in instead of the weights (no model pass)."""
    from collections import OrderedDict

    from toolformer_app import models

    monkeypatch.setattr(runtime, "_status", {})
    monkeypatch.setattr(runtime, "_labels", {})
    monkeypatch.setattr(runtime, "_keys", {})
    monkeypatch.setattr(models, "_CACHE", OrderedDict())
    monkeypatch.setattr(models, "_load_uncached", lambda source, dev, dtype: (object(), object()))
    monkeypatch.setattr(models, "resolve", lambda name=None: name)
    return models


def test_models_evicted_from_the_cache_are_not_shown_as_ready(fake_loads, monkeypatch):
    monkeypatch.setenv("TOOLFORMER_MODEL_CACHE_SIZE", "2")
    for name in ("org/a", "org/b", "org/c"):
        runtime.get_model(name)
    line = runtime.status_line()
    assert "`org/a` unloaded" in line and "`org/b` ready" in line and "`org/c` ready" in line
    runtime.get_model("org/a")  # loads again: b is the one evicted now
    assert "`org/a` ready" in runtime.status_line() and "`org/b` unloaded" in runtime.status_line()


def test_the_status_line_names_a_finetune_by_its_folder_never_its_server_path(fake_loads):
    from toolformer_app import config

    out = config.data_dir().resolve() / "finetuned" / "ft-abc"
    out.mkdir(parents=True)
    runtime.get_model(str(out))
    line = runtime.status_line()
    assert "`ft-abc` ready" in line and str(config.data_dir().resolve()) not in line


def test_on_a_space_a_path_that_exists_and_one_that_does_not_get_one_message(monkeypatch):
    """Without the allow-list, "toolformer_app/nope.py" looks like a hub id: its load failure must read
    as the refusal of "toolformer_app/cli.py", and neither name reaches the shared status line."""
    from toolformer_app import models

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TOOLFORMER_ALLOWED_MODELS", raising=False)
    monkeypatch.setattr(runtime, "_status", {})
    messages = []
    for name in ("toolformer_app/cli.py", "toolformer_app/nope.py", "toolformer_app/ui", "/etc/passwd"):
        with pytest.raises(models.ModelLoadError) as err:
            runtime.get_model(name)
        messages.append(str(err.value))
    assert len(set(messages)) == 1 and "not available here" in messages[0]
    assert "toolformer_app" not in runtime.status_line()


@pytest.mark.slow
def test_app_py_starts_offline_and_serves_the_page(tmp_path):
    """The thin entry point: served well before the model is loaded (target < 15 s on an idle laptop)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "TOOLFORMER_DATA_DIR": str(tmp_path / "data"),
           "OMP_NUM_THREADS": "1"}
    env.pop("GRADIO_SERVER_NAME", None)
    log = open(tmp_path / "log.txt", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()[-2000:]
        served = time.perf_counter() - t0
        assert served < 60, "app.py did not serve the page"
        print(f"app.py served the page after {served:.1f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "log.txt").read_text()
    assert f"http://127.0.0.1:{port}" in text and "gradio.live" not in text
