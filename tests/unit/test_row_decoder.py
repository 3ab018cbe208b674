"""Decoding with tools on a tiny fp32 model whose next tokens are scripted by boosting their logits."""

from __future__ import annotations

import json

import pytest
import torch

from toolformer_app.decoding import (
    CallExecuted,
    CallStarted,
    Done,
    InferenceConfig,
    TextChunk,
    execute_tool,
    generate_with_tools,
    run_with_tools,
)
from toolformer_app.tools.base import Tool, ToolResult


class Scripted(torch.nn.Module):
    """Wraps a causal LM: at absolute position p, boosts the logit of ``script[p]`` by 1000.

    The script depends only on the position, so cached and uncached passes see the same bias.
    """

    def __init__(self, inner: torch.nn.Module, script: dict[int, int]):
        super().__init__()
        self.inner, self.script = inner, script
        self.config, self.generation_config = inner.config, inner.generation_config

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def forward(self, input_ids, cache=None, **kwargs):
        past = cache.get_seq_length() if cache is not None else 0
        out = self.inner(input_ids=input_ids, cache=cache, **kwargs)
        nxt = past + input_ids.shape[1]
        if nxt in self.script:
            out.logits[0, -1, self.script[nxt]] += 1000.0
        return out


def scripted(tiny_model, prompt: str, text: str) -> tuple[Scripted, list[int]]:
    """A model that writes ``text`` right after ``prompt`` (then whatever the tiny model says)."""
    model, tok = tiny_model
    prompt_ids = tok.encode(prompt)
    ids = tok.encode(text, add_special_tokens=False)
    return Scripted(model, {len(prompt_ids) + i: t for i, t in enumerate(ids)}), prompt_ids


class Counting:
    """A plain callable tool that records its inputs."""

    def __init__(self, fn=lambda s: str(eval(s, {"__builtins__": {}}))):  # test-only arithmetic
        self.fn, self.inputs = fn, []

    def __call__(self, s: str) -> str:
        self.inputs.append(s)
        return self.fn(s)


PROMPT = "The farm has 2 cows and 3 pigs, so"


def test_call_runs_once_result_inserted_decoding_continues(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " it has [Calculator(2 + 3) ->")
    calc = Counting()
    res = run_with_tools(model, tok, PROMPT, {"Calculator": calc}, InferenceConfig(max_new_tokens=16, ignore_eos=True))
    assert calc.inputs == ["2 + 3"]
    assert res.text.startswith(" it has [Calculator(2 + 3) -> 5]")
    assert len(res.text) > len(" it has [Calculator(2 + 3) -> 5]")  # went on after "]"
    [call] = res.calls
    assert (call.tool, call.input, call.output, call.ok) == ("Calculator", "2 + 3", "5", True)
    assert res.text[call.start : call.end] == call.text == " [Calculator(2 + 3) -> 5]"
    assert tok.decode(res.token_ids[call.token_start : call.token_end]) == call.text
    assert res.stats.tokens_generated == 16
    assert tok.decode(res.token_ids) == res.text
    # no re-encoding: every token went through the model exactly once
    assert res.stats.prefix_tokens_reencoded == 0
    assert res.stats.tokens_fed <= res.stats.prompt_tokens + len(res.token_ids)
    assert res.stats.tokens_injected == len(tok.encode(" 5]", add_special_tokens=False))


def test_cache_continuation_equals_reencoding(tiny_model):
    """After the call, greedy decoding from the cache = greedy decoding re-encoding everything."""
    _, tok = tiny_model
    model, prompt_ids = scripted(tiny_model, PROMPT, " it has [Calculator(2 + 3) ->")
    cfg = InferenceConfig(max_new_tokens=20, ignore_eos=True)
    res = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()}, cfg)
    [call] = res.calls
    # the text up to "]" re-tokenises to the same ids (no odd split at the injection)
    upto = res.text[: call.end]
    assert tok.encode(PROMPT + upto) == prompt_ids + res.token_ids[: call.token_end]
    ids = prompt_ids + res.token_ids[: call.token_end]
    api = tok.encode(" [", add_special_tokens=False)[0]
    with torch.inference_mode():
        for expected in res.token_ids[call.token_end :]:
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].clone()  # no cache
            logits[api] = float("-inf")  # max_calls reached
            logits[tok.eos_token_id] = float("-inf")  # ignore_eos
            nxt = int(logits.argmax())
            assert nxt == expected
            ids.append(nxt)
    assert len(res.token_ids) > call.token_end + 5


def test_events_stream(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " it has [Calculator(2 + 3) ->")
    events = list(generate_with_tools(model, tok, PROMPT, {"Calculator": Counting()}, InferenceConfig(max_new_tokens=12)))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert kinds.index("call_started") < kinds.index("call")
    done = events[-1]
    assert isinstance(done, Done)
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == done.text
    started = next(e for e in events if isinstance(e, CallStarted))
    assert done.text[started.offset :].startswith(" [Calculator(")
    call_text = "".join(e.text for e in events if isinstance(e, TextChunk) and e.in_call)
    assert call_text == " [Calculator(2 + 3) -> 5]"
    json.dumps([e.to_dict() for e in events])  # serialisable for the UI


def test_disabled_never_calls_even_when_top1(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " [Calculator(2 + 3) ->")
    api = tok.encode(" [", add_special_tokens=False)[0]
    for cfg in (InferenceConfig(max_new_tokens=8, disabled=True), InferenceConfig(max_new_tokens=8, top_k_call=0)):
        calc = Counting()
        res = run_with_tools(model, tok, PROMPT, {"Calculator": calc}, cfg)
        assert res.calls == [] and calc.inputs == []
        assert api not in res.token_ids


def test_top_k_forces_call_when_not_top1(tiny_model):
    """k=10 starts a call when " [" ranks 2nd..10th; k=1 (greedy) does not."""
    model, tok = tiny_model
    api = tok.encode(" [", add_special_tokens=False)[0]
    prompt_ids = tok.encode(PROMPT)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt_ids])).logits[0, -1]
    top = logits.topk(5).indices.tolist()

    class Ranked(Scripted):
        def forward(self, input_ids, cache=None, **kw):
            past = cache.get_seq_length() if cache is not None else 0
            out = self.inner(input_ids=input_ids, cache=cache, **kw)
            if past + input_ids.shape[1] == len(prompt_ids):  # make " [" rank exactly 4th at the first step
                out.logits[0, -1, top] += 100.0
                out.logits[0, -1, api] = out.logits[0, -1, top[3]] - 1e-3
            return out

    m = Ranked(model, {})
    top10 = run_with_tools(m, tok, PROMPT, {}, InferenceConfig(max_new_tokens=3, top_k_call=10))
    top1 = run_with_tools(m, tok, PROMPT, {}, InferenceConfig(max_new_tokens=3, top_k_call=1))
    assert top10.token_ids[0] == api
    assert top1.token_ids[0] != api


@pytest.mark.parametrize(
    ("script", "tools", "reason", "text"),
    [
        (" [Foo(1) ->", {}, "unknown tool", " [Foo(1) -> ]"),
        (" [Calculator(1/0) ->", {"Calculator": Counting()}, "ZeroDivisionError", " [Calculator(1/0) -> ]"),
        (" [Calculator(2) ->", {"Calculator": lambda s: None}, "no result", " [Calculator(2) -> ]"),
        (" [Calculator(3+4)] is", {"Calculator": Counting()}, "closed without '->'", " [Calculator(3+4)]"),
        (" [Calculator] is", {}, "not a tool call", " [Calculator]"),
        (" [1] is", {}, "no 'Name(' after '['", " []"),
        (" [ the", {}, "no 'Name(' after '['", " []"),
        (" [Calculator(1 + 2 + 3 + 4 + 5 + 6", {}, "longer than 8 tokens", " [Calculator(1 + 2]"),
        (" [Calculator(2\n", {}, "newline", " [Calculator(2]"),
    ],
)
def test_malformed_calls_never_crash(tiny_model, script, tools, reason, text):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, script)
    res = run_with_tools(model, tok, PROMPT, tools, InferenceConfig(max_new_tokens=14, max_call_tokens=8, ignore_eos=True))
    [call] = res.calls
    assert isinstance(call, CallExecuted) and not call.ok and call.output is None
    assert reason in call.reason
    assert call.text == text and res.text.startswith(text)
    assert res.stats.tokens_generated == 14  # decoding went on


def test_calculator_closed_without_arrow_does_not_run_tool(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " [Calculator(3+4)] is")
    calc = Counting()
    run_with_tools(model, tok, PROMPT, {"Calculator": calc}, InferenceConfig(max_new_tokens=10))
    assert calc.inputs == []


def test_out_of_tokens_inside_call_closes_it(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " [Calculator(2 + 3")
    res = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()}, InferenceConfig(max_new_tokens=4))
    [call] = res.calls
    assert not call.ok and "max_new_tokens" in call.reason
    assert res.text.endswith("]")


@pytest.mark.parametrize("max_calls", [1, 2])
def test_max_calls(tiny_model, max_calls):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " [Calculator(1 + 1) -> 2] and [Calculator(2 + 2) ->")
    calc = Counting()
    cfg = InferenceConfig(max_new_tokens=30, max_calls=max_calls, ignore_eos=True)
    res = run_with_tools(model, tok, PROMPT, {"Calculator": calc}, cfg)
    assert calc.inputs == ["1 + 1", "2 + 2"][:max_calls]
    assert len(res.calls) == max_calls
    assert res.text.count(" [") == max_calls


def test_stop_string(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " five.\n\nNext")
    res = run_with_tools(model, tok, PROMPT, {}, InferenceConfig(max_new_tokens=10, stop=("\n\n",)))
    assert res.text == " five." and res.stop_reason == "stop"
    chunks = "".join(e.text for e in res.events if isinstance(e, TextChunk))
    assert chunks == res.text


def test_sampling_is_seeded(tiny_model):
    model, tok = tiny_model
    cfg = InferenceConfig(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3, top_k_call=0)
    a = run_with_tools(model, tok, PROMPT, {}, cfg)
    b = run_with_tools(model, tok, PROMPT, {}, cfg)
    assert a.token_ids == b.token_ids


def test_eos_stops(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " done" + tok.eos_token)
    res = run_with_tools(model, tok, PROMPT, {}, InferenceConfig(max_new_tokens=10))
    assert res.text == " done" and res.stop_reason == "eos"


def test_empty_prompt_and_chat_template(tiny_model):
    model, tok = tiny_model
    res = run_with_tools(model, tok, "", {}, InferenceConfig(max_new_tokens=3))
    assert res.stats.prompt_tokens == 1 and res.stats.tokens_generated == 3
    res = run_with_tools(model, tok, "Hi", {}, InferenceConfig(max_new_tokens=2, chat_template=True))
    assert res.stats.prompt_tokens > len(tok.encode("Hi")) + 5  # wrapped in <|im_start|>user ... assistant


def test_execute_tool_kinds():
    class Echo(Tool):
        name = "Echo"

        def run(self, input: str) -> ToolResult:
            return ToolResult(f"[{input}] -> ok") if input else ToolResult(None, "empty input")

    tools = {"Echo": Echo(), "Add": lambda a, b: a + b}
    assert execute_tool(tools, "Echo", "x") == ("(x) → ok", "")  # sanitised: it cannot end the call
    assert execute_tool(tools, "echo", "x")[0] == "(x) → ok"  # case-insensitive fallback
    assert execute_tool(tools, "Echo", "") == (None, "empty input")
    assert execute_tool(tools, "Add", "1, 2") == ("3", "")
    assert execute_tool(tools, "Nope", "1")[0] is None


# -- a token that merges "->" with what follows --------------------------------------------------------
class ToyTokenizer:
    """Greedy longest-match tokenizer over a tiny vocabulary that holds the merged token "->7"."""

    def __init__(self):
        self.vocab = ["<eos>", " [", "Calculator", "(", ")", "->7", "->", " ", "]", "+", "-", ">", "x", "\n",
                      *"0123456789", *"abcdefghijklmnopqrstuvwyz"]
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.eos_token_id, self.eos_token, self.bos_token_id = 0, "<eos>", None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            best = max((t for t in self.vocab if text.startswith(t, i)), key=len)
            ids.append(self.index[best])
            i += len(best)
        return ids

    def decode(self, ids, **kwargs) -> str:
        return "".join(self.vocab[i] for i in ids)

    def __len__(self) -> int:
        return len(self.vocab)


def test_arrow_merged_with_more_text_is_retokenised():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = ToyTokenizer()
    torch.manual_seed(0)
    inner = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         bos_token_id=0, eos_token_id=0, pad_token_id=0)).eval()
    prompt = "ab"
    ids = tok.encode(" [Calculator(2+3)->7")
    assert tok.vocab[ids[-1]] == "->7"
    model = Scripted(inner, {len(tok.encode(prompt)) + i: t for i, t in enumerate(ids)})
    calc = Counting()
    res = run_with_tools(model, tok, prompt, {"Calculator": calc}, InferenceConfig(max_new_tokens=12, ignore_eos=True))
    assert calc.inputs == ["2+3"]
    assert res.calls[0].text == " [Calculator(2+3)-> 5]"
    assert tok.index["->7"] not in res.token_ids
    assert res.stats.prefix_tokens_reencoded == 0


# -- the CLI, in process, on the tiny model -------------------------------------------------------------
def test_chat_cli_prints_text_and_calls(tiny_model, monkeypatch, capsys):
    import json as _json

    from toolformer_app import cli, models

    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " it has [Calculator(2 + 3) ->")
    monkeypatch.setattr(models, "load", lambda name=None, device=None, dtype=None: (model, tok))
    assert cli.main(["chat", "--tools", "Calculator", "--max-new-tokens", "16", PROMPT]) == 0
    out = capsys.readouterr().out
    assert out.startswith(" it has [Calculator(2 + 3) -> 5]")
    assert "1 call(s)" in out and "Calculator(2 + 3) -> '5'" in out
    assert cli.main(["chat", "--tools", "Calculator", "--max-new-tokens", "16", "--json", PROMPT]) == 0
    data = _json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["calls"][0]["output"] == "5" and data["text"].startswith(" it has [Calculator(2 + 3) -> 5]")
    assert cli.main(["chat", "--disabled", "--max-new-tokens", "5", PROMPT]) == 0
    assert "0 call(s)" in capsys.readouterr().out


def test_bench_inference_is_registered():
    from toolformer_app import cli

    args = cli.build_parser().parse_args(["bench", "inference", "--n", "2", "--json"])
    assert args.bench_kind == "inference" and args.n == 2 and args.json and callable(args.func)


# -- constrained tool names and the call threshold ---------------------------------------------------
WIKI = " [WikiSearch(Peru) ->"


def test_disabled_tool_cannot_be_written_the_call_is_declined(tiny_model):
    """The model prefers WikiSearch, which is not enabled: no call is written there, and the text is
    what the model writes with tools disabled (the lookahead is cropped from the cache)."""
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, WIKI)
    calc = Counting()
    res = run_with_tools(model, tok, PROMPT, {"Calculator": calc}, InferenceConfig(max_new_tokens=8, ignore_eos=True))
    off = run_with_tools(model, tok, PROMPT, {"Calculator": calc},
                         InferenceConfig(max_new_tokens=8, ignore_eos=True, disabled=True))
    assert res.calls == [] and calc.inputs == [] and "[" not in res.text
    assert res.text == off.text and res.token_ids == off.token_ids
    assert res.stats.calls_declined >= 1 and res.stats.lookahead_tokens >= 1  # " [" read, then cropped
    assert res.stats.prefix_tokens_reencoded == 0


def test_constrained_names_force_an_enabled_tool_without_decline(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, WIKI)
    cfg = InferenceConfig(max_new_tokens=12, ignore_eos=True, decline_disabled=False)
    res = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()}, cfg)
    [call] = res.calls
    assert call.tool == "Calculator" and call.text.startswith(" [Calculator(")
    assert res.stats.prefix_tokens_reencoded == 0 and tok.decode(res.token_ids) == res.text


def test_free_names_keep_todays_behaviour(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, WIKI)
    cfg = InferenceConfig(max_new_tokens=12, ignore_eos=True, constrain_names=False)
    [call] = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()}, cfg).calls
    assert call.tool == "WikiSearch" and not call.ok and "unknown tool" in call.reason


def test_enabled_name_is_read_from_the_trie_same_as_free_decoding(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " it has [Calculator(2 + 3) ->")
    free = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()},
                          InferenceConfig(max_new_tokens=16, ignore_eos=True, constrain_names=False))
    trie = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()}, InferenceConfig(max_new_tokens=16, ignore_eos=True))
    assert trie.text == free.text and trie.token_ids == free.token_ids
    assert trie.stats.prefix_tokens_reencoded == 0
    # " [Calcul" starts one known name only: "Calcul", "ator", "(" go in with one pass, not a pass per token
    assert trie.stats.forward_passes < free.stats.forward_passes


def test_a_name_start_that_only_one_tool_has_chooses_that_tool(tiny_model):
    """After " [Calcul" the model would write "us": the Calculator is still its choice (no other name starts
    so), so the call is written, as constrained decoding writes the rest of a name that is already decided."""
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " it has [Calculus(2 + 3) ->")
    calc = Counting()
    res = run_with_tools(model, tok, PROMPT, {"Calculator": calc}, InferenceConfig(max_new_tokens=16, ignore_eos=True))
    assert [c.tool for c in res.calls] == ["Calculator"] and res.calls[0].text.startswith(" [Calculator(")
    assert res.stats.calls_declined == 0 and tok.decode(res.token_ids) == res.text


def test_call_threshold_gates_on_p_api_start(tiny_model):
    _, tok = tiny_model
    model, _ = scripted(tiny_model, PROMPT, " it has [Calculator(2 + 3) ->")
    never = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()},
                           InferenceConfig(max_new_tokens=10, call_threshold=1.01))
    always = run_with_tools(model, tok, PROMPT, {"Calculator": Counting()},
                            InferenceConfig(max_new_tokens=10, call_threshold=0.0, decline_disabled=False))
    assert never.calls == [] and "[" not in never.text
    assert always.calls and always.text.startswith(" [")
