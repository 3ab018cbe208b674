"""Batched decoding with tools equals decoding each prompt alone (float32): text, tokens, calls, events."""

from __future__ import annotations

import pytest
import torch

from toolformer_app.decoding import CallExecuted, Done, InferenceConfig, TextChunk, run_with_tools
from toolformer_app.decoding.batch import BatchDecoder, generate_batch


class PositionScripted(torch.nn.Module):
    """Wraps a causal LM: boosts ``script[(p, previous token)]`` by 1000 at the row's next position p.

    It reads each row's positions (``position_ids``, or the cache length at batch 1), so one script
    drives every row of a batch the same way as each prompt alone.
    """

    def __init__(self, inner: torch.nn.Module, script: dict[tuple[int, int], int]):
        super().__init__()
        self.inner, self.script = inner, script
        self.config, self.generation_config = inner.config, inner.generation_config

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def forward(self, input_ids, cache=None, position_ids=None, **kwargs):
        if position_ids is None:
            past = cache.get_seq_length() if cache is not None else 0
            last = [past + input_ids.shape[1] - 1] * input_ids.shape[0]
        else:
            last = position_ids[:, -1].tolist()
        out = self.inner(input_ids=input_ids, cache=cache, position_ids=position_ids, **kwargs)
        for b, pos in enumerate(last):
            token = self.script.get((pos + 1, int(input_ids[b, -1])))
            if token is not None:
                out.logits[b, -1, token] += 1000.0
        return out


def scripts(tok, pairs: list[tuple[str, str]]) -> dict[tuple[int, int], int]:
    """The script that makes the model write each text right after its prompt."""
    script: dict[tuple[int, int], int] = {}
    for prompt, text in pairs:
        ids = tok.encode(prompt) + tok.encode(text, add_special_tokens=False)
        for i in range(len(tok.encode(prompt)), len(ids)):
            key = (i, ids[i - 1])
            assert script.get(key, ids[i]) == ids[i], "two scripts disagree: choose other prompts"
            script[key] = ids[i]
    return script


class Counting:
    def __init__(self):
        self.inputs: list[str] = []

    def __call__(self, s: str) -> str:
        self.inputs.append(s)
        return str(eval(s, {"__builtins__": {}}))  # test-only arithmetic


CASES = [  # (prompt, scripted continuation, config)
    ("The farm has 2 cows and 3 pigs, so", " it has [Calculator(2 + 3) ->", InferenceConfig(max_new_tokens=16)),
    ("Tom bought 4 apples and 7 pears", " and then 9 more on the way home, in all [Calculator(4 + 7 + 9) ->",
     InferenceConfig(max_new_tokens=30, ignore_eos=True)),
    ("The capital of Peru is", " [WikiSearch(Peru) ->", InferenceConfig(max_new_tokens=10, ignore_eos=True)),  # declined
    ("Once upon a time", " there was a fox.\n\nThe end", InferenceConfig(max_new_tokens=12, stop=("\n\n",))),
    ("Sam has 5 red hats:", " twice [Calculator(5 * 2) ->", InferenceConfig(max_new_tokens=9, disabled=True)),
    ("A list of birds:", "", InferenceConfig(max_new_tokens=7, temperature=1.0, seed=3, top_k_call=0)),
    ("Ann had 8 pens", " and lost [Calculator(8 - 3) ->", InferenceConfig(max_new_tokens=14, call_threshold=0.5)),
]


def _strip(event) -> dict:
    d = event.to_dict()  # timings differ between runs
    d.pop("duration_s", None)
    d.pop("stats", None)
    for call in d.get("calls", []):
        call.pop("duration_s")
    return d


@pytest.fixture()
def scripted_model(tiny_model):
    model, tok = tiny_model
    return PositionScripted(model, scripts(tok, [(p, t) for p, t, _ in CASES])), tok


def _alone(model, tok, tools_factory):
    out = []
    for prompt, _, cfg in CASES:
        out.append(run_with_tools(model, tok, prompt, tools_factory(), cfg))
    return out


@pytest.mark.parametrize(("max_rows", "pad_cost"), [(16, 32), (2, 0), (3, 1000)])
def test_batched_rows_equal_each_prompt_alone(scripted_model, max_rows, pad_cost):
    """Seven rows: calls at different steps, a declined call (cropped), a stop string, tools disabled,
    sampling, a threshold; all at once, two at a time (rows joining mid-run), long chunks."""
    model, tok = scripted_model
    alone = _alone(model, tok, lambda: {"Calculator": Counting()})
    assert [len(r.calls) for r in alone] == [1, 1, 0, 0, 0, 0, 1]
    assert alone[0].calls[0].ok and alone[1].calls[0].ok and alone[1].calls[0].token_start > 10
    assert alone[2].stats.calls_declined == 1 and alone[3].stop_reason == "stop"

    decoder = BatchDecoder(model, tok, max_rows=max_rows, pad_cost=pad_cost)
    calc = Counting()
    ids = [decoder.submit(p, {"Calculator": calc}, cfg) for p, _, cfg in CASES]
    events: dict[int, list] = {i: [] for i in ids}
    for rid, event in decoder.run():
        events[rid].append(event)
    assert sorted(calc.inputs) == ["2 + 3", "4 + 7 + 9", "8 - 3"]
    assert decoder.stats.max_rows <= max_rows
    st = decoder.stats  # the phase timers cover the passes that ran
    assert st.decode_s > 0 and st.prefill_s > 0 and st.merge_s > 0 and st.merges >= st.prefills
    for rid, single in zip(ids, alone, strict=True):
        done = events[rid][-1]
        assert isinstance(done, Done)
        assert done.text == single.text and done.token_ids == single.token_ids
        assert done.stop_reason == single.stop_reason
        assert [_strip(e) for e in events[rid]] == [_strip(e) for e in single.events]
        assert done.stats.tokens_generated == single.stats.tokens_generated


def test_generate_batch_returns_results_in_order(scripted_model):
    model, tok = scripted_model
    alone = _alone(model, tok, lambda: {"Calculator": Counting()})
    batch = generate_batch(model, tok, [p for p, _, _ in CASES], {"Calculator": Counting()},
                           [cfg for _, _, cfg in CASES], max_rows=4)
    assert [r.text for r in batch] == [r.text for r in alone]
    assert [[(c.tool, c.input, c.output) for c in r.calls] for r in batch] == \
        [[(c.tool, c.input, c.output) for c in r.calls] for r in alone]


def test_cancel_and_sink_stop_only_their_row(scripted_model):
    model, tok = scripted_model
    alone = _alone(model, tok, lambda: {"Calculator": Counting()})
    decoder = BatchDecoder(model, tok, max_rows=8)
    seen: list = []

    def first_chunk_only(event):  # a sink that stops its row after the first text
        seen.append(event)
        return isinstance(event, TextChunk)

    stopped = decoder.submit(CASES[1][0], {"Calculator": Counting()}, CASES[1][2], sink=first_chunk_only)
    cancelled = decoder.submit(CASES[0][0], {"Calculator": Counting()}, CASES[0][2])
    others = [decoder.submit(p, {"Calculator": Counting()}, cfg) for p, _, cfg in CASES[2:]]
    events: dict[int, list] = {}
    first = True
    while decoder.busy:
        for rid, event in decoder.step():
            events.setdefault(rid, []).append(event)
        if first:
            assert decoder.cancel(cancelled)
            first = False
    assert [type(e) for e in seen] == [TextChunk] and stopped not in events  # a sink gets its row's events
    assert not any(isinstance(e, (CallExecuted, Done)) for e in events.get(cancelled, []))
    assert not decoder.cancel(cancelled)
    for rid, single in zip(others, alone[2:], strict=True):
        assert events[rid][-1].text == single.text


def test_batch_rows_are_independent_of_their_neighbours(tiny_model):
    """Plain rows of very different prompt lengths, in fp32: the logits path gives the same greedy text."""
    model, tok = tiny_model
    prompts = ["Hi", "A much longer prompt that goes on and on about nothing in particular, " * 3, "Numbers: 1 2 3"]
    cfg = InferenceConfig(max_new_tokens=12, ignore_eos=True, top_k_call=0)
    batch = generate_batch(model, tok, prompts, {}, cfg)
    for prompt, res in zip(prompts, batch, strict=True):
        assert res.token_ids == run_with_tools(model, tok, prompt, {}, cfg).token_ids
