"""Shared prompt prefixes: their KV is computed once, rows prefill only their own rest, and every row's
text, calls and events stay those it gets alone (float32)."""

from __future__ import annotations

import pytest
import torch

from tests.unit.test_batched import Counting, PositionScripted, _strip, scripts
from toolformer_app.decoding import Done, Feed, InferenceConfig, run_with_tools
from toolformer_app.decoding.batch import BatchDecoder
from toolformer_app.decoding.prefix_cache import PrefixCache, common_length
from toolformer_app.decoding.server import DecodingServer, Limits

PREFIX = "Examples of sums: two and two make four; ten and five make fifteen; six and one make seven.\n"
CASES = [  # (prompt, scripted continuation, config)
    (PREFIX + "The farm has 2 cows and 3 pigs, so", " it has [Calculator(2 + 3) ->", InferenceConfig(max_new_tokens=16)),
    (PREFIX + "Tom bought 4 apples and 7 pears", " and then 9 more, in all [Calculator(4 + 7 + 9) ->",
     InferenceConfig(max_new_tokens=28, ignore_eos=True)),
    (PREFIX + "Once upon a time", " there was a fox.\n\nThe end", InferenceConfig(max_new_tokens=12, stop=("\n\n",))),
    ("The capital of Peru is", " [WikiSearch(Peru) ->", InferenceConfig(max_new_tokens=10, ignore_eos=True)),
    (PREFIX + "Ann had 8 pens", " and lost [Calculator(8 - 3) ->", InferenceConfig(max_new_tokens=14, call_threshold=0.5)),
]


def _kv(tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(1, 2, tokens, 4), torch.zeros(1, 2, tokens, 4))]


def test_common_length():
    assert common_length([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_length([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_length([5], [6]) == 0 and common_length([], [1]) == 0
    assert all(common_length(list(range(n)) + [-1], list(range(300))) == n for n in range(0, 300, 7))


def test_lookup_takes_the_longest_entry_and_leaves_an_own_token():
    store = PrefixCache(min_tokens=2)
    store.add([1, 2], _kv(2))
    store.add([1, 2, 3, 4], _kv(4))
    store.add([9, 9, 9], _kv(3))
    assert store.lookup([1, 2, 3, 4, 5]).ids == (1, 2, 3, 4)
    assert store.lookup([1, 2, 3, 4]).ids == (1, 2)  # the whole prompt: its last id must be fed for logits
    assert store.lookup([1, 3, 3]) is None and store.lookup([9, 9]) is None


def test_a_new_entry_needs_a_long_enough_shared_start_and_gain():
    store = PrefixCache(min_tokens=3)
    store.remember([1, 2, 3, 4, 5, 6])
    assert store.worth_caching([1, 2, 7], [], 0) == 0  # 2 shared ids: too short
    assert store.worth_caching([1, 2, 3, 4, 8], [], 0) == 4
    assert store.worth_caching([1, 2, 3, 4, 8], [], 2) == 0  # 2 more than the cached one: not worth it
    assert store.worth_caching([1, 2, 3, 4, 5, 6], [], 0) == 5  # the same prompt: all but its last id
    assert store.worth_caching([7, 7, 7, 7, 1], [[7, 7, 7, 7, 2]], 0) == 4  # shared with a row admitted with it
    store.remember([1, 2, 3, 4, 9, 9])
    assert store.worth_caching([1, 2, 3, 4, 5, 6], [], 0) == 4  # the start two prompts share saves more


def test_entries_are_bounded_in_count_and_bytes():
    k, v = _kv(1)[0]
    store = PrefixCache(max_entries=2, max_bytes=30 * (k.nbytes + v.nbytes), min_tokens=1)  # 30 tokens
    for first in range(3):
        store.add([first, 0], _kv(2))
    assert list(store.entries) == [(1, 0), (2, 0)]  # the least recently used went
    store.lookup([1, 0, 5])  # now (2, 0) is the oldest
    store.add([3] * 10, _kv(10))
    assert list(store.entries) == [(1, 0), (3,) * 10]
    store.add([4] * 20, _kv(20))  # 2 + 10 + 20 tokens: over the bytes, the oldest goes
    assert list(store.entries) == [(3,) * 10, (4,) * 20] and store.nbytes == store.max_bytes
    big = store.add([5] * 40, _kv(40))  # alone over the budget: returned for use now, not kept
    assert big.ids == (5,) * 40 and list(store.entries) == [(3,) * 10, (4,) * 20]


@pytest.fixture()
def scripted_model(tiny_model):
    model, tok = tiny_model
    return PositionScripted(model, scripts(tok, [(p, t) for p, t, _ in CASES])), tok


def _decode(model, tok, max_rows: int, prefix_cache) -> tuple[BatchDecoder, list[list]]:
    decoder = BatchDecoder(model, tok, max_rows=max_rows, prefix_cache=prefix_cache)
    ids = [decoder.submit(p, {"Calculator": Counting()}, cfg) for p, _, cfg in CASES]
    events: dict[int, list] = {i: [] for i in ids}
    for rid, event in decoder.run():
        events[rid].append(event)
    return decoder, [events[i] for i in ids]


@pytest.mark.parametrize("max_rows", [8, 2])
def test_rows_with_a_cached_prefix_equal_each_prompt_alone(scripted_model, max_rows):
    """Four prompts share a start, three of them call the Calculator; all at once, or two at a time
    (the later rows find the entry made for the first ones)."""
    model, tok = scripted_model
    alone = [run_with_tools(model, tok, p, {"Calculator": Counting()}, cfg) for p, _, cfg in CASES]
    assert [len(r.calls) for r in alone] == [1, 1, 0, 0, 1] and all(r.calls[0].ok for r in alone if r.calls)
    on, with_cache = _decode(model, tok, max_rows, PrefixCache(min_tokens=8))
    off, without = _decode(model, tok, max_rows, False)
    for single, a, b in zip(alone, with_cache, without, strict=True):
        assert isinstance(a[-1], Done) and a[-1].text == single.text and a[-1].token_ids == single.token_ids
        assert [_strip(e) for e in a] == [_strip(e) for e in single.events] == [_strip(e) for e in b]
    shared = common_length(tok.encode(CASES[0][0]), tok.encode(CASES[1][0]))
    assert shared >= 20 and off.stats.prefix_hits == 0 and off.prefixes is None
    assert on.stats.prefix_entries == 1 and on.stats.prefix_hits == 4
    assert on.stats.prefix_tokens == 4 * shared
    # the prefix is fed once (its own pass) instead of once per row
    assert on.stats.tokens == off.stats.tokens - on.stats.prefix_tokens + shared


def test_a_start_only_one_new_row_shares_is_kept_from_its_own_prefill(scripted_model):
    """Requests one at a time (one Chat session): the second prompt shares its start with the first; that start
    is cut from its own prefill (no pass of its own), and the third prompt uses it. Each equals alone."""
    model, tok = scripted_model
    tools = {"Calculator": Counting()}
    picks = [CASES[0], CASES[1], CASES[4]]
    decoders = {flag: BatchDecoder(model, tok, max_rows=8, prefix_cache=PrefixCache(min_tokens=8) if flag else False)
                for flag in (True, False)}
    for prompt, _, cfg in picks:
        single = run_with_tools(model, tok, prompt, tools, cfg)
        for decoder in decoders.values():
            decoder.submit(prompt, tools, cfg)
            assert [e.text for _, e in decoder.run() if isinstance(e, Done)] == [single.text]
    on, off = decoders[True].stats, decoders[False].stats
    assert on.prefix_entries == 0 and on.prefix_kept == 1 and on.prefix_hits == 1
    assert on.forward_passes == off.forward_passes  # no pass of its own
    shared = common_length(tok.encode(CASES[0][0]), tok.encode(CASES[1][0]))
    assert on.prefix_tokens == shared and on.tokens == off.tokens - shared


def test_prefilled_rest_gives_the_logits_of_the_whole_prompt(tiny_model):
    """The next-token logits after a prompt, through a cached prefix (rows joining in two waves), are
    those of one forward pass over the whole prompt: the prefix's keys, values and positions are right."""
    model, tok = tiny_model
    prompts = [PREFIX + tail for tail in ("A cat", "The tank held 900 liters and 275 were used", "Numbers: 1 2 3")]
    decoder = BatchDecoder(model, tok, max_rows=8, prefix_cache=PrefixCache(min_tokens=8))
    got: dict[int, torch.Tensor] = {}

    def probe(i: int, ids: list[int]):
        got[i] = yield Feed(ids)

    for wave in (prompts[:2], prompts[2:]):
        for prompt in wave:
            decoder.submit_steps(probe(prompts.index(prompt), tok.encode(prompt)))
        list(decoder.run())
    assert decoder.stats.prefix_entries == 1 and decoder.stats.prefix_hits == 3
    with torch.inference_mode():
        for i, prompt in enumerate(prompts):
            whole = model(input_ids=torch.tensor([tok.encode(prompt)])).logits[0, -1]
            torch.testing.assert_close(got[i], whole, rtol=0, atol=1e-5)


def test_the_server_passes_the_switch_on(scripted_model):
    model, tok = scripted_model
    for flag in (True, False):
        server = DecodingServer(model, tok, Limits(max_rows=2, prefix_cache=flag))
        assert (server.decoder.prefixes is not None) is flag
        server.close()


def test_bench_chat_reports_the_prefix_cache(tiny_model):
    from toolformer_app import cli
    from toolformer_app.bench import chat

    model, tok = tiny_model
    assert cli.build_parser().parse_args(["bench", "chat"]).prefix_cache == "on"  # as Chat
    args = cli.build_parser().parse_args(["bench", "chat", "--prefix-cache", "both", "--requests", "1"])
    assert args.prefix_cache == "both" and args.repeats == 3
    with pytest.raises(SystemExit):  # argparse's one-line usage error
        cli.build_parser().parse_args(["bench", "chat", "--repeats", "0"])
    prompts = [PREFIX * 3 + "A cat", PREFIX * 3 + "Numbers: 1 2 3"]  # a shared start of 64 tokens or more
    cfg = InferenceConfig(max_new_tokens=3, ignore_eos=True, top_k_call=0)
    on = chat._measure(model, tok, 2, args, prompts, {}, cfg, prefix_cache=True)
    off = chat._measure(model, tok, 2, args, prompts, {}, cfg, prefix_cache=False)
    assert {"sessions", "total_tok_s", "ttft_p50_s", "ttft_p95_s", "peak_rss_mb"} <= on.keys()
    assert on["first_event_p95_s"] <= on["ttft_p95_s"]  # a call's start comes no later than the first text
    assert on["errors"] == off["errors"] == 0 and on["prefix_hits"] == 2 and off["prefix_hits"] == 0
    assert on["tokens_fed"] <= off["tokens_fed"]  # less when the two requests share one entry (timing)


def test_bench_chat_run_pairs_each_one_session_run_with_a_baseline_run(tiny_model_dir, capsys):
    import json

    from toolformer_app import cli

    args = cli.build_parser().parse_args(["bench", "chat", "--model", str(tiny_model_dir), "--sessions", "1,2",
                                          "--requests", "1", "--max-new-tokens", "3", "--repeats", "2",
                                          "--prefix-cache", "both", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["repeats"] == 2 and report["prefix_cache"] == "both"
    lo, hi = report["one_session_vs_baseline_range"]
    assert 0 < lo <= report["one_session_vs_baseline"] <= hi  # the median of two adjacent pairs' ratios
    assert report["one_row_decoder_vs_baseline"] > 0  # the decoder alone, to tell its cost from the server's
    one, two = report["runs"]
    for row in (one, two):
        assert row["repeats"] == 2 and row["errors"] == 0 and row["requests"] == 2 * row["sessions"]
        low, high = row["total_tok_s_range"]
        assert low <= row["total_tok_s"] <= high and "total_tok_s_no_prefix" in row
    assert one["x_one_session"] == 1.0 and two["x_one_session"] == round(two["total_tok_s"] / one["total_tok_s"], 2)
    raw = report["raw_decode"]  # the bare decode step at each concurrency as a batch: the ceiling
    assert set(raw) == {"1", "2"} and raw["1"]["x"] == 1.0 and raw["2"]["tok_s"] > 0


def test_bench_chat_raw_only_measures_the_bare_decode_step(tiny_model_dir, capsys):
    import json

    from toolformer_app import cli

    args = cli.build_parser().parse_args(["bench", "chat", "--model", str(tiny_model_dir), "--sessions", "1,4",
                                          "--repeats", "1", "--raw-only", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "runs" not in report and set(report["raw_decode"]) == {"1", "4"}
    four, one = report["raw_decode"]["4"], report["raw_decode"]["1"]
    assert four["x"] == pytest.approx(four["tok_s"] / one["tok_s"], rel=0.05)  # tok/s are rounded to 0.1
