"""The toolformer-pytorch README's API runs as written (device-agnostic), on top of the same library code."""

from __future__ import annotations

import datetime

import torch

from toolformer_app import PaLM, Toolformer, filter_tokens_with_api_response, invoke_tools
from toolformer_app.compat import FunctionTool


def test_seed_filter_snippet_runs_with_palm_and_keeps_rows_by_threshold():
    torch.manual_seed(0)
    palm = PaLM(dim=64, num_tokens=2000, depth=2, heads=4, dim_head=16).cuda()  # stays on CPU without a GPU
    start, stop, pos, length = 1998, 1999, 40, 6
    tokens = torch.randint(0, 1998, (3, 96))
    with_r, without_r = torch.randint(0, 1998, (3, 96)), torch.randint(0, 1998, (3, 96))
    for t in (with_r, without_r):
        t[:, pos] = start
        t[:, pos + length] = stop
    res = filter_tokens_with_api_response(
        model=palm, tokens=tokens, tokens_with_api_response=with_r, tokens_without_api_response=without_r,
        filter_threshold=-1e9, api_start_token_id=start, api_end_token_id=stop,
    )
    assert res.keep.all() and res.tokens.shape == (3, 96)
    assert torch.isfinite(res.loss_reduction).all()


def test_palm_kv_cache_matches_a_full_pass():
    torch.manual_seed(0)
    palm = PaLM(dim=32, num_tokens=100, depth=2, heads=2, dim_head=16).eval()
    ids = torch.randint(0, 100, (2, 12))
    full = palm(ids).logits
    first = palm(ids[:, :7], use_cache=True)
    rest = palm(ids[:, 7:], cache=first.cache, use_cache=True)
    assert torch.allclose(rest.logits, full[:, 7:], atol=1e-5)


def test_seed_invoke_tools_example():
    text = "Make the following API calls: [inc(1)] and [dec(2)] and [ignored(3)]"
    out = invoke_tools({"inc": lambda i: i + 1, "dec": lambda i: i - 1}, text)
    assert out == "Make the following API calls: [inc(1) -> 2] and [dec(2) -> 1] and [ignored(3)]"


def test_seed_single_tool_form_runs_the_pipeline(tiny_model):
    model, tok = tiny_model

    def Calendar():  # noqa: N802 - toolformer-pytorch's name
        return f"Today is {datetime.date(2023, 1, 30):%A, %B %d, %Y}."

    prompt = ('Your task is to add calls to a Calendar API to a piece of text.\nYou can call the API by writing '
              '"[Calendar()]".\nInput: Today is the first Friday of the year.\nOutput: Today is the first '
              '[Calendar()] Friday of the year.\nInput: [input]\nOutput: ')
    toolformer = Toolformer(model=model, tokenizer=tok, teach_tool_prompt=prompt, tool_id="Calendar", tool=Calendar)
    toolformer.config.tau_s, toolformer.config.k, toolformer.config.m, toolformer.config.max_call_tokens = 0.0, 2, 2, 6
    out = toolformer(["The shop is never open on weekends, so it is closed today.", "Christmas is in 30 days."])
    assert out["stats"]["texts_seen"] == 2
    assert out["stats"]["per_tool"]["Calendar"]["samples_drawn"] == 8  # 2 texts x k=2 x m=2
    assert isinstance(FunctionTool(name="C", fn=Calendar).run("").output, str)
    text = toolformer.sample_model_with_api_calls("How many days until New Year?", max_new_tokens=5)
    assert isinstance(text, str)


def test_an_import_of_a_moved_module_names_its_new_place():
    import pytest

    with pytest.raises(ModuleNotFoundError, match=r"toolformer_app.inference has moved: import from toolformer_app.decoding"):
        import toolformer_app.inference  # noqa: F401
    from toolformer_app.decoding import InferenceConfig, generate_with_tools  # the new place works

    assert InferenceConfig().top_k_call == 10 and callable(generate_with_tools)
