"""Soak for Chat with many visitors: 8 concurrent gradio_client sessions for a minute.

All eight go through the app's ``/chat`` endpoint on 127.0.0.1, so their requests share the decoding
server's running batch. Each session sends, in turn, a prompt that calls the Calculator, a plain prompt
that calls nothing, and an empty prompt (refused). Every request is bounded in time, every session in
count, and the soak in time (TOOLFORMER_SOAK_S, 60 s by default). At the end: every response was a result
or a one-line error, every valid request got a result, and the process RSS is within 300 MB of its value
after a warm-up in which eight sessions chatted at once (the batch's buffers for 8 rows then exist).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.ui.helpers import is_one_line_error, run_sessions

pytestmark = pytest.mark.slow

SESSIONS = 8
SOAK_S = float(os.environ.get("TOOLFORMER_SOAK_S", "60"))
MAX_REQUESTS = 20  # per session
REQUEST_TIMEOUT_S = 120.0
RSS_MARGIN = 300 * 2**20
CALC = "Q: 12 + 30 = ?\nA: [Calculator(12 + 30) -> 42] 42\nQ: 17 * 23 = ?\nA:"
PLAIN = "The river flows through the old town and"


def _chat(client, message: str, model: str) -> Any:
    args = (message, [], [], model, 10, 1, ["Calculator"], 16, True, "plain", False)
    return client.submit(*args, api_name="/chat").result(timeout=REQUEST_TIMEOUT_S)


def _session(client, model: str, rows: list, lock: threading.Lock, deadline: float, offset: int) -> None:
    prompts = [CALC, PLAIN, ""]
    for n in range(MAX_REQUESTS):
        if time.monotonic() >= deadline:
            return
        message = prompts[(n + offset) % len(prompts)]
        t0 = time.monotonic()
        try:
            out = _chat(client, message, model)
            row = (message, "ok" if isinstance(out, (list, tuple)) and len(out) == 5 else "bad result", repr(out)[:200])
        except Exception as exc:  # a refused request: what the client shows
            row = (message, "error", str(exc))
        with lock:
            rows.append((*row, time.monotonic() - t0))


def test_eight_chat_sessions_for_a_minute_get_answers_and_stay_bounded(app_url, monkeypatch):
    import psutil
    from gradio_client import Client

    from toolformer_app import config

    assert urlparse(app_url).hostname == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "soak/toolformer-studio")  # the public profile: its limits apply
    # eight visitors, who all come from 127.0.0.1 here: the per-address bound would refuse six of them
    monkeypatch.setenv("TOOLFORMER_MAX_QUEUED_PER_CLIENT", str(2 * SESSIONS))
    model = config.default_chat_model()
    proc = psutil.Process()
    clients = [Client(app_url, verbose=False) for _ in range(SESSIONS)]

    # warm-up: eight sessions at once, each prompt kind, so the server has decoded a full batch
    warm = [threading.Thread(target=_chat, args=(c, (CALC, PLAIN)[i % 2], model)) for i, c in enumerate(clients)]
    run_sessions(warm, 4 * REQUEST_TIMEOUT_S)
    gc.collect()
    rss_warm = proc.memory_info().rss

    rows: list[tuple[str, str, str, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SOAK_S
    sessions = [threading.Thread(target=_session, args=(c, model, rows, lock, deadline, i))
                for i, c in enumerate(clients)]
    run_sessions(sessions, SOAK_S + 4 * REQUEST_TIMEOUT_S)
    for c in clients:
        c.close()

    assert len(rows) >= SESSIONS, rows
    for message, status, text, _ in rows:
        assert status in ("ok", "error"), (message, status, text)
        if status == "error":
            assert message == "", f"a valid prompt was refused: {text}"
            assert is_one_line_error(text), text
    answered = [r for r in rows if r[1] == "ok"]
    assert {r[0] for r in answered} == {CALC, PLAIN}, "both prompt kinds got answers"
    assert any("Calculator" in r[2] for r in answered if r[0] == CALC), "the few-shot prompt called the Calculator"

    gc.collect()
    grown = proc.memory_info().rss - rss_warm
    assert grown < RSS_MARGIN, f"RSS grew by {grown / 2**20:.0f} MB after warm-up (margin {RSS_MARGIN // 2**20} MB)"
