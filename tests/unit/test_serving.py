"""The decoding server: concurrent sessions get what each gets alone; cancel removes one row; limits refuse."""

from __future__ import annotations

import threading
import time

import pytest

from tests.unit.test_batched import CASES, Counting, PositionScripted, scripts
from toolformer_app.decoding import CallExecuted, Done, InferenceConfig, TextChunk, run_with_tools
from toolformer_app.decoding.server import DecodingServer, Limits, Refused


@pytest.fixture()
def scripted_model(tiny_model):
    model, tok = tiny_model
    return PositionScripted(model, scripts(tok, [(p, t) for p, t, _ in CASES])), tok


class SlowCalculator(Counting):
    """A tool that takes a while (QA's reader would): only its own row waits."""

    def __call__(self, s: str) -> str:
        time.sleep(0.3)
        return super().__call__(s)


def test_concurrent_sessions_equal_each_alone(scripted_model):
    model, tok = scripted_model
    alone = [run_with_tools(model, tok, p, {"Calculator": Counting()}, cfg) for p, _, cfg in CASES]
    server = DecodingServer(model, tok, Limits(max_rows=4))
    results: dict[int, list] = {}

    def session(i: int) -> None:
        prompt, _, cfg = CASES[i]
        ticket = server.submit(prompt, {"Calculator": SlowCalculator()}, cfg)
        results[i] = list(ticket.events(timeout=60))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(CASES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    server.close()
    for i, single in enumerate(alone):
        events = results[i]
        done = events[-1]
        assert isinstance(done, Done) and done.text == single.text and done.token_ids == single.token_ids
        assert [e.kind for e in events] == [e.kind for e in single.events]  # text, call started, call, done
        assert [(c.tool, c.input, c.output) for c in done.calls] == [(c.tool, c.input, c.output) for c in single.calls]


def test_cancel_removes_only_that_row(scripted_model):
    model, tok = scripted_model
    alone = [run_with_tools(model, tok, p, {"Calculator": Counting()}, cfg) for p, _, cfg in CASES[:4]]
    server = DecodingServer(model, tok, Limits(max_rows=4))
    tickets = [server.submit(p, {"Calculator": Counting()}, cfg) for p, _, cfg in CASES[:4]]
    first = next(iter(tickets[1].events(timeout=60)))
    assert isinstance(first, TextChunk)
    tickets[1].cancel()
    rest = list(tickets[1].events(timeout=60))  # ends without Done
    assert not any(isinstance(e, (Done, CallExecuted)) for e in rest) or rest == []
    for i in (0, 2, 3):
        events = list(tickets[i].events(timeout=60))
        assert events[-1].text == alone[i].text
    server.close()


def test_requests_over_the_limits_are_refused_before_joining(scripted_model):
    model, tok = scripted_model
    server = DecodingServer(model, tok, Limits(max_rows=1, max_waiting=1, max_new_tokens=16, max_prompt_tokens=8))
    with pytest.raises(Refused, match="new tokens"):
        server.submit("Hi", {}, InferenceConfig(max_new_tokens=17))
    with pytest.raises(Refused, match="longer than 8 tokens"):
        server.submit("word " * 20, {}, InferenceConfig(max_new_tokens=4))
    cfg = InferenceConfig(max_new_tokens=16, ignore_eos=True)
    a, b = server.submit("one", {}, cfg), server.submit("two", {}, cfg)
    with pytest.raises(Refused, match="busy"):
        for _ in range(5):  # the loop may already have taken the first ones in
            server.submit("three", {}, cfg)
    assert list(a.events(timeout=60))[-1].kind == "done" and list(b.events(timeout=60))[-1].kind == "done"
    server.close()


def test_requests_sent_together_to_an_idle_server_start_in_one_prefill(scripted_model):
    model, tok = scripted_model
    server = DecodingServer(model, tok, Limits(max_rows=4, gather_s=0.2))
    tickets = []
    for prompt, _, cfg in CASES[:4]:
        tickets.append(server.submit(prompt, {"Calculator": Counting()}, cfg))
        time.sleep(0.05)  # within the gathering window of the first
    for ticket in tickets:
        assert list(ticket.events(timeout=60))[-1].kind == "done"
    assert server.decoder.stats.prefills == 1 and server.decoder.stats.max_rows == 4
    t0 = time.monotonic()
    prompt, _, cfg = CASES[0]
    assert list(server.submit(prompt, {"Calculator": Counting()}, cfg).events(timeout=60))[-1].kind == "done"
    assert time.monotonic() - t0 < 30  # a lone request waits at most 4 x gather_s for company
    assert server.decoder.stats.prefills == 2
    server.close()


def test_bench_chat_is_registered():
    from toolformer_app import cli

    args = cli.build_parser().parse_args(["bench", "chat", "--sessions", "1,4,8", "--json"])
    assert args.bench_kind == "chat" and args.sessions == "1,4,8" and args.json and callable(args.func)
