"""Soak for the public-Space profile: 4 concurrent gradio_client sessions against the app on 127.0.0.1.

One session annotates, one chats, one starts evaluations and cancels them, one uploads bad files. The
annotate and chat sessions also send lone surrogates and control-only text as a raw queue call (gradio_client
cannot encode a lone surrogate), and the upload session sends hostile files: a lone surrogate in a
candidate and in a text (then Export C*), deeply nested JSON, and two texts that share a text_id.
Every request is bounded in time, every session in count, and the soak in time (TOOLFORMER_SOAK_S,
60 s by default). At the end: the process RSS it retains (collected and trimmed) is within 300 MB of its value after warm-up, no CPU
is spent from the last request + 5 s on (nothing left running: a cancelled evaluation really
stopped), and every response was a result or a one-line error.
"""

from __future__ import annotations

import gc
import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.ui.helpers import is_one_line_error, run_sessions

pytestmark = pytest.mark.slow

SOAK_S = float(os.environ.get("TOOLFORMER_SOAK_S", "60"))
MAX_REQUESTS = 30  # per session
REQUEST_TIMEOUT_S = 120.0
RSS_MARGIN = 300 * 2**20
MODEL = "smollm2-135m"
TEXT = "The orchard has 36 rows of 24 apple trees, so it holds 864 trees in all."
PROMPT = "Q: 12 + 30 = ?\nA: 42\nQ: 7 * 6 = ?\nA:"


class Outcomes:
    """What every request got: a result, or an error with its message (thread-safe)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.last_request_end = time.monotonic()

    def run(self, kind: str, call: Callable[[], Any], check: Callable[[Any], bool] = lambda out: True) -> None:
        try:
            out = call()
            row = (kind, "ok" if check(out) else "bad result", repr(out)[:200])
        except AssertionError as exc:  # the test's own check failed (never a refusal the server sent)
            row = (kind, "bad result", str(exc))
        except Exception as exc:  # a refused request: what the client shows
            row = (kind, "error", str(exc))
        with self.lock:
            self.rows.append(row)
            self.last_request_end = time.monotonic()


def _predict(client, *args, api_name: str) -> Any:
    return client.submit(*args, api_name=api_name).result(timeout=REQUEST_TIMEOUT_S)


class Raw:
    """A raw queue call, as a hand-written client sends it: the JSON is escaped by ``json.dumps`` (so a lone
    surrogate travels as "\\ud800", which the server decodes), the reply read from the event stream. The
    result is the output data; a refusal raises with the server's message; a cut stream is a bad result."""

    def __init__(self, app_url: str) -> None:
        import httpx

        self.base = app_url.rstrip("/")
        config = httpx.get(f"{self.base}/config", timeout=30).json()
        kinds = {c["id"]: c.get("type") for c in config["components"]}
        self.deps = {d["api_name"]: (d["id"], [kinds.get(i) for i in d["inputs"]])
                     for d in config["dependencies"] if d.get("api_name")}

    def predict(self, *args: Any, api_name: str) -> Any:
        import uuid

        import httpx

        fn, kinds = self.deps[api_name.lstrip("/")]
        values = iter(args)
        data = [None if kind == "state" else next(values) for kind in kinds]  # gr.State stays on the server
        session = uuid.uuid4().hex
        body = json.dumps({"data": data, "fn_index": fn, "session_hash": session, "event_data": None,
                           "trigger_id": None})
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            http.post(f"{self.base}/gradio_api/queue/join", content=body.encode("ascii"),
                      headers={"Content-Type": "application/json"}).raise_for_status()
            with http.stream("GET", f"{self.base}/gradio_api/queue/data", params={"session_hash": session}) as sse:
                for line in sse.iter_lines():
                    msg = json.loads(line[5:]) if line.startswith("data:") else {}
                    if msg.get("msg") != "process_completed":
                        continue
                    output = msg.get("output") or {}
                    if msg.get("success"):
                        return output.get("data")
                    raise RuntimeError(str(output.get("error") or "an error without a message"))
        return f"{api_name}: the stream ended without a result or an error"  # not a list: a bad result


def _encodable(out: Any) -> bool:
    """What Gradio sends back must encode as UTF-8 (a lone surrogate in it once cut the stream)."""
    json.dumps(out, ensure_ascii=False, default=str).encode("utf-8")
    return True


def _annotate(client, raw: Raw, outcomes: Outcomes, deadline: float) -> None:
    inputs = [
        (TEXT, ["Calculator"], MODEL, False, 0.003, 1, 1, 1.0),  # a real run (k = m = 1 keeps it short)
        ("   ", ["Calculator"], MODEL, True, 0.0, 1, 1, 1.0),  # empty: refused
        (TEXT, ["Calculator"], "/etc", True, 0.0, 1, 1, 1.0),  # a server path: refused
        ("x [a(" * 20_000, ["Calculator"], MODEL, False, 0.003, 1, 1, 1.0),  # cut at the limit, then run
    ]
    for n in range(MAX_REQUESTS):
        if time.monotonic() >= deadline:
            return
        outcomes.run("annotate", lambda args=inputs[n % len(inputs)]: _predict(client, *args, api_name="/annotate"),
                     lambda out: isinstance(out, (list, tuple)) and len(out) == 6)
        if n < len(RAW_ANNOTATE) and time.monotonic() < deadline:
            outcomes.run("annotate", lambda args=RAW_ANNOTATE[n]: raw.predict(*args, api_name="/annotate"),
                         lambda out: isinstance(out, list) and _encodable(out))  # raw: state outputs included


RAW_ANNOTATE = [  # each once, as a raw call: a lone surrogate mid-text (replaced, then run); surrogates alone
    (TEXT[:20] + "\ud800" + TEXT[20:], ["Calculator"], MODEL, False, 0.003, 1, 1, 1.0),
    ("\udcff\ud800 \x01", ["Calculator"], MODEL, True, 0.0, 1, 1, 1.0),  # nothing left: refused as empty
]


def _chat(client, raw: Raw, outcomes: Outcomes, deadline: float) -> None:
    inputs = [
        (PROMPT, [], [], MODEL, 10, 1, ["Calculator"], 12, True, "plain", False),
        ("", [], [], MODEL, 10, 1, ["Calculator"], 12, True, "plain", False),  # empty: refused
        (PROMPT, [], [], "../../../../etc/passwd", 10, 1, ["Calculator"], 12, True, "plain", False),  # refused
        (PROMPT, [], [], DOTDOT_FINETUNE, 10, 1, ["Calculator"], 12, True, "plain", False),  # refused, as any ..
    ]
    for n in range(MAX_REQUESTS):
        if time.monotonic() >= deadline:
            return
        outcomes.run("chat", lambda args=inputs[n % len(inputs)]: _predict(client, *args, api_name="/chat"),
                     lambda out: isinstance(out, (list, tuple)) and len(out) == 5)
        if n < len(RAW_CHAT) and time.monotonic() < deadline:
            outcomes.run("chat", lambda text=RAW_CHAT[n]: raw.predict(text, [], [], MODEL, 10, 1, ["Calculator"], 12,
                                                                      True, "plain", False, 0.0, True,
                                                                      api_name="/chat"),
                         lambda out: isinstance(out, list) and _encodable(out))


# a path through a directory that exists back into the data dir: refused with the one message, never loaded
DOTDOT_FINETUNE = "/tmp/../" + "data/finetuned/ft-20260101-000000-abcd"
RAW_CHAT = ["2 + 2 = \ud800", "\x01\x02", "\ud800"]  # replaced then answered; control-only and surrogate-only: refused


def _evaluate_and_cancel(client, outcomes: Outcomes, deadline: float) -> None:
    from toolformer_app import config

    for _ in range(MAX_REQUESTS):
        if time.monotonic() >= deadline:
            return
        job = client.submit(MODEL, ["math", "dates"], ["base", "tools", "disabled"], config.max_eval_items(), 10,
                            api_name="/evaluate")
        time.sleep(3.0)
        job.cancel()
        t0 = time.monotonic()
        while not job.done() and time.monotonic() - t0 < 30:
            time.sleep(0.2)
        ended = job.done()
        outcomes.run("evaluate", lambda ended=ended: "cancelled" if ended else (_ for _ in ()).throw(
            AssertionError("a cancelled evaluation did not end within 30 s")))
        outcomes.run("evaluate", lambda: _predict(client, MODEL, ["math"], ["base"], 10**6, 10,
                                                  api_name="/evaluate"))  # over the cap: refused
        outcomes.run("evaluate", lambda: _predict(client, MODEL, ["math"], ["tools"], 20, 10,
                                                  ",".join(str(k) for k in range(3000)), "",
                                                  api_name="/evaluate"))  # 3,000 k values: refused (k <= 50)
        t0 = time.monotonic()  # 3,000 copies of one k: one value, and items x values x suites within the cap
        outcomes.run("evaluate", lambda: _predict(client, MODEL, ["math"], ["base"], 1, 10, ",".join(["0"] * 3000),
                                                  "", api_name="/evaluate"))
        outcomes.run("evaluate", lambda t0=t0: None if time.monotonic() - t0 < REQUEST_TIMEOUT_S else
                     (_ for _ in ()).throw(AssertionError("a deduplicated sweep took too long")))


def _upload_bad_files(app_url: str, outcomes: Outcomes, deadline: float) -> None:
    """Each bad file goes through the server's upload route, then through the tab handler that receives it."""
    import gradio as gr
    import httpx

    from toolformer_app.ui import annotate, finetune
    from toolformer_app.ui import filter as loss_filter

    rng = random.Random(0)
    good = {"text_id": "1", "tool": "Calculator", "token_pos": 3, "char_pos": 5, "p_i": 0.4, "input": "1 + 1"}
    files = [
        ("junk.txt", b"A" * 5000 + bytes(rng.randrange(256) for _ in range(4000)), annotate.load_upload),
        ("nan.jsonl", (json.dumps({**good, "loss_reduction": "NaN"}) + "\n"
                       + json.dumps(good).replace("}", ', "loss_reduction": NaN}') + "\n").encode(),
         loss_filter.load_run_file),
        ("calls.jsonl", ("".join(json.dumps({"text": "x [a(" * 2000}) + "\n" for _ in range(80))).encode(),
         finetune.upload_dataset),  # ~800 KB of unclosed calls: the parser stays linear
        ("UPPER.JSONL", b"\x00" * 64, loss_filter.load_run_file),
        *_defect_files(),
    ]
    for n in range(MAX_REQUESTS):
        if time.monotonic() >= deadline:
            return
        name, data, handler = files[n % len(files)]

        def send(name: str = name, data: bytes = data, handler: Callable = handler) -> Any:
            reply = httpx.post(f"{app_url.rstrip('/')}/gradio_api/upload", files={"files": (name, data)},
                               timeout=REQUEST_TIMEOUT_S)
            reply.raise_for_status()
            (stored,) = reply.json()
            t0 = time.monotonic()
            try:
                return handler(stored)
            except gr.Error:
                raise  # a refusal, shown to the user in one line
            except Exception as exc:  # anything else would reach the user raw (the codec's message)
                raise AssertionError(f"{name}: not a refusal: {type(exc).__name__}: {exc}") from None
            finally:
                assert time.monotonic() - t0 < 20, f"{name}: the handler took {time.monotonic() - t0:.0f} s"

        outcomes.run("upload", send, _encodable)
        time.sleep(0.5)


def _bursts(app_url: str, raw: Raw, outcomes: Outcomes) -> dict[str, list[int]]:
    """The probe's scripts, each from its own address: raw /annotate joins whose results are never read, and
    20 uploads of ~1 MB. The bounds refuse most of each with one line; what they admit is bounded."""
    import httpx

    base = app_url.rstrip("/")
    codes: dict[str, list[int]] = {"join": [], "upload": []}
    with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers={"x-forwarded-for": "203.0.113.7"}) as http:
        fn_index, kinds = raw.deps["annotate"]
        values = iter((TEXT, ["Calculator"], MODEL, False, 0.003, 1, 1, 1.0))
        data = [None if kind == "state" else next(values) for kind in kinds]
        for n in range(6):
            reply = http.post(f"{base}/gradio_api/queue/join", json={
                "data": data, "fn_index": fn_index, "session_hash": f"burst{n}", "event_data": None,
                "trigger_id": None})
            codes["join"].append(reply.status_code)
        http.headers["x-forwarded-for"] = "203.0.113.8"
        for n in range(20):
            reply = http.post(f"{base}/gradio_api/upload", files={"files": (f"blob{n}.txt", b"x" * 900_000)})
            codes["upload"].append(reply.status_code)

            def refused(reply: httpx.Response = reply) -> None:
                if reply.status_code != 200:
                    raise RuntimeError(reply.text)

            outcomes.run("upload", refused)
    return codes


def _defect_files() -> list[tuple[str, bytes, Callable]]:
    """Hostile inputs: lone surrogates in a candidate and in a text, nested JSON, a repeated text_id."""
    from tests.ui.helpers import candidate
    from toolformer_app.ui import annotate, finetune
    from toolformer_app.ui import filter as loss_filter

    def record(text_id: str, text: str, **cand: Any) -> str:
        return json.dumps({"text_id": text_id, "text": text, "candidates": [candidate(text_id=text_id, **cand)]})

    def export(path: str) -> str:  # the Filter tab: load, then Export C* at the default τf
        return loss_filter.export_dataset(loss_filter.load_run_file(path), 0.5)

    def export_own_texts(path: str) -> str:  # a repeated text_id: each call stays in its own text
        out = export(path)
        texts = [json.loads(line)["text"] for line in Path(out).read_text(encoding="utf-8").splitlines()]
        assert texts and not [t for t in texts if "6*7" in t], texts
        return out

    nested = ("[" * 100_000 + "]" * 100_000 + "\n").encode()
    other = "Six times seven is here and long enough."
    return [
        ("surrogate-input.jsonl", (record("1", TEXT, inp="\ud800") + "\n" + record("2", TEXT) + "\n").encode(),
         loss_filter.load_run_file),  # the line is refused and named, the rest loads
        ("surrogate-text.jsonl", (record("1", TEXT[:40] + "\ud800" + TEXT[41:]) + "\n").encode(), export),
        ("nested.jsonl", nested, loss_filter.load_run_file),
        ("nested-dataset.jsonl", nested, finetune.upload_dataset),
        ("nested-texts.jsonl", nested, annotate.load_upload),
        ("repeated-id.jsonl", (record("t1", TEXT) + "\n" + record("t1", other, char_pos=22, inp="6*7", result="42")
                               + "\n").encode(), export_own_texts),
    ]


def _retained_rss(proc) -> int:
    """RSS once garbage is collected and the heap's free pages are handed back (glibc's malloc_trim, as the app
    does after each job): memory still held, not the allocator's high-water mark, which depends on how the
    four sessions' requests happened to overlap (one CI run: +500 MB at the peak, +305 MB untrimmed at the end)."""
    from toolformer_app.ui import runtime

    gc.collect()
    runtime.release_memory()
    return proc.memory_info().rss


def test_four_sessions_for_a_minute_stay_bounded_and_leave_nothing_running(app_url, monkeypatch):
    import psutil
    from gradio_client import Client

    assert urlparse(app_url).hostname == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "soak/toolformer-studio")  # the public profile: model allow-list, no finetune
    monkeypatch.setenv("TOOLFORMER_MAX_TEXT_CHARS", "2000")
    monkeypatch.setenv("TOOLFORMER_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("TOOLFORMER_MAX_UPLOAD_CACHE_MB", "40")  # one address may post 8 MB a day
    monkeypatch.setenv("TOOLFORMER_MAX_QUEUED_PER_CLIENT", "3")  # the soak's own three model sessions share 127.0.0.1
    proc = psutil.Process()

    # warm-up: the model is loaded and each path has run once
    warm = Client(app_url, verbose=False)
    _predict(warm, TEXT, ["Calculator"], MODEL, False, 0.003, 1, 1, 1.0, api_name="/annotate")
    _predict(warm, PROMPT, [], [], MODEL, 10, 1, ["Calculator"], 12, True, "plain", False, api_name="/chat")
    # a full batch of items in each decoding mode: evaluation decodes up to 16 rows together, and the soak's
    # evaluations (cancelled after 3 s) reach that batch size, whose buffers must exist before RSS is read
    _predict(warm, MODEL, ["math", "dates"], ["base", "tools", "disabled"], 16, 10, api_name="/evaluate")
    # the longest input the soak sends (cut at the public limit): its activations are the largest
    _predict(warm, "x [a(" * 20_000, ["Calculator"], MODEL, False, 0.003, 1, 1, 1.0, api_name="/annotate")
    warm.close()
    rss_warm = _retained_rss(proc)
    rss_series: list[int] = []  # every 2 s: a leak keeps climbing, an allocator's high-water mark levels off
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(2.0):
            rss_series.append(proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    outcomes = Outcomes()
    deadline = time.monotonic() + SOAK_S
    clients = [Client(app_url, verbose=False) for _ in range(3)]
    raw = Raw(app_url)
    sessions = [
        threading.Thread(target=_annotate, args=(clients[0], raw, outcomes, deadline)),
        threading.Thread(target=_chat, args=(clients[1], raw, outcomes, deadline)),
        threading.Thread(target=_evaluate_and_cancel, args=(clients[2], outcomes, deadline)),
        threading.Thread(target=_upload_bad_files, args=(app_url, outcomes, deadline)),
    ]
    bursts = _bursts(app_url, raw, outcomes)
    run_sessions(sessions, SOAK_S + 4 * REQUEST_TIMEOUT_S)
    assert bursts["join"].count(503) >= 3 and set(bursts["join"]) <= {200, 503}, bursts
    assert 413 in bursts["upload"] and bursts["upload"].count(200) <= 9, bursts
    for c in clients:
        c.close()

    # nothing runs on after the last request: 5 s of grace, then 3 s that must cost (almost) no CPU
    time.sleep(max(0.0, outcomes.last_request_end + 5 - time.monotonic()))
    before = proc.cpu_times()
    time.sleep(3.0)
    after = proc.cpu_times()
    busy = (after.user + after.system) - (before.user + before.system)
    assert busy < 0.5, f"{busy:.2f} s of CPU in 3 s after the last request: something is still running"
    assert not [t.name for t in threading.enumerate() if t.name == "toolformer-eval"]

    kinds = {kind for kind, _, _ in outcomes.rows}
    assert kinds == {"annotate", "chat", "evaluate", "upload"}, outcomes.rows
    for kind, status, message in outcomes.rows:
        assert status in ("ok", "error"), (kind, status, message)
        if status == "error":
            assert is_one_line_error(message), (kind, message)
    refused = [m for k, s, m in outcomes.rows if s == "error" and k in ("annotate", "chat") and "Model:" in m]
    assert all("not available here" in m for m in refused)

    stop_sampling.set()
    sampler.join()
    grown = _retained_rss(proc) - rss_warm
    series = ", ".join(f"{(r - rss_warm) / 2**20:+.0f}" for r in rss_series[::5])
    assert grown < RSS_MARGIN, (f"RSS grew by {grown / 2**20:.0f} MB after warm-up (margin {RSS_MARGIN // 2**20} MB);"
                                f" MB over warm-up every 10 s: {series}")
