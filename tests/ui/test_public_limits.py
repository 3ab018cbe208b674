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


def _slow_demo():
    import time

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        box.submit(lambda text: time.sleep(3) or text, box, out, api_name="slow",
                   concurrency_id=runtime.MODEL_CONCURRENCY, concurrency_limit=1)
        box.change(lambda text: time.sleep(3) or text, box, out, api_name="other")  # no model: not counted
    return demo


def _join(http, base: str, api_name: str, session: str):
    demo_fns = http.get(f"{base}/gradio_api/info").json()["named_endpoints"]
    assert f"/{api_name}" in demo_fns
    config = http.get(f"{base}/config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
    return http.post(f"{base}/gradio_api/queue/join",
                     json={"data": ["x"], "fn_index": fn_index, "session_hash": session, "event_data": None,
                           "trigger_id": None})


@pytest.mark.timeout(120)
def test_one_client_cannot_queue_more_than_its_share_of_model_events(monkeypatch):
    import httpx

    from toolformer_app.ui.queue_guard import REFUSAL, configure_queue

    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")
    monkeypatch.setenv("TOOLFORMER_MAX_QUEUED_PER_CLIENT", "2")
    monkeypatch.setenv("TOOLFORMER_MAX_QUEUE", "5")
    demo = configure_queue(_slow_demo())
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        with httpx.Client(timeout=30) as http:
            # new session hashes, /queue/data never opened: what the probe's script sent
            answers = [_join(http, url.rstrip("/"), "slow", f"s{i}") for i in range(6)]
            codes = [a.status_code for a in answers]
            assert codes == [200, 200, 503, 503, 503, 503], codes
            assert answers[-1].json()["detail"] == REFUSAL
            forwarded = {"x-forwarded-for": "198.51.100.7"}  # another visitor behind the Space's proxy
            http.headers.update(forwarded)
            assert _join(http, url.rstrip("/"), "slow", "other").status_code == 200
            http.headers.pop("x-forwarded-for")
            other = [_join(http, url.rstrip("/"), "other", f"o{i}").status_code for i in range(12)]
            assert other[:3] == [200] * 3 and other[-1] == 503  # the queue's own size bounds everything else
    finally:
        demo.close()


def test_off_a_public_deployment_the_queue_is_not_bounded(monkeypatch):
    from toolformer_app import config

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("TOOLFORMER_PUBLIC", raising=False)
    assert config.max_queue_size() is None and config.max_queued_per_client() is None
    monkeypatch.setenv("TOOLFORMER_PUBLIC", "1")
    assert config.max_queue_size() == 64 and config.max_queued_per_client() == 2
    monkeypatch.setenv("TOOLFORMER_MAX_QUEUED_PER_CLIENT", "0")
    with pytest.raises(config.SettingError, match="TOOLFORMER_MAX_QUEUED_PER_CLIENT"):
        config.check_settings()


@pytest.mark.timeout(120)
def test_the_upload_route_has_a_per_client_and_a_total_quota(monkeypatch):
    import httpx

    from toolformer_app.ui import launch_kwargs, upload_quota

    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")
    monkeypatch.setenv("TOOLFORMER_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("TOOLFORMER_MAX_UPLOAD_CACHE_MB", "10")  # a client's share: 2 MB
    upload_quota.reset()
    with gr.Blocks() as demo:
        gr.File()
    kwargs = {k: v for k, v in launch_kwargs().items() if k not in ("theme", "css")}
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **kwargs)
    blob = b"x" * 900_000

    def post(client: httpx.Client, n: int) -> httpx.Response:
        return client.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": (f"f{n}.txt", blob)})

    try:
        with httpx.Client(timeout=30) as http:
            codes = [post(http, n).status_code for n in range(20)]  # the probe: 20 x ~1 MB from one client
            assert codes[:2] == [200, 200] and set(codes[2:]) == {413}, codes
            assert "TOOLFORMER_MAX_UPLOAD_CACHE_MB" in post(http, 99).text
            others = []
            for n in range(12):  # other visitors behind the proxy, until the cache's total is spent
                http.headers["x-forwarded-for"] = f"198.51.100.{n}"
                others.append(post(http, n).status_code)
            assert others[:8] == [200] * 8 and others[-1] == 413, others
    finally:
        demo.close()
        upload_quota.reset()


def test_on_zerogpu_the_evaluation_itself_is_wrapped(monkeypatch):
    """spaces.GPU wraps the model-bound handler (not a helper that parses the sweep fields)."""
    import importlib
    import sys
    import types

    from toolformer_app.ui import evaluate

    wrapped: list[str] = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: wrapped.append(fn.__name__) or fn
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "spaces" else None)
    try:
        importlib.reload(evaluate)
        assert wrapped == ["run_evaluation"], wrapped
    finally:
        monkeypatch.undo()
        importlib.reload(evaluate)
