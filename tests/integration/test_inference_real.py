"""Decoding with tools on the real default model (smollm2-135m, bf16 on CPU). Kept short."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolformer_app.decoding import InferenceConfig, run_with_tools

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = (
    "The orchard has 36 rows of 24 apple trees, so it holds [Calculator(36 * 24) -> 864] 864 trees in all.\n"
    "Of the 250 students who sat the exam, 215 passed, a pass rate of [Calculator(215 / 250) -> 0.86] 86%.\n"
)
PROMPT = SHOTS + "The farm has 48 cows and bought 17 more, so it now has"


def test_few_shot_prompt_makes_a_calculator_call(real_model):
    from toolformer_app.tools import get_tool

    model, tok = real_model
    res = run_with_tools(model, tok, PROMPT, {"Calculator": get_tool("Calculator")},
                         InferenceConfig(max_new_tokens=14, top_k_call=10))
    assert res.calls, res.text
    call = res.calls[0]
    assert call.tool == "Calculator" and call.ok, call
    assert res.text.startswith(" [Calculator(") and f"-> {call.output}]" in res.text
    assert res.stats.prefix_tokens_reencoded == 0
    assert res.stats.tokens_generated > call.token_end - res.stats.tokens_injected  # went on after "]"


def test_disabled_makes_no_call(real_model):
    model, tok = real_model
    res = run_with_tools(model, tok, PROMPT, {"Calculator": lambda s: "0"},
                         InferenceConfig(max_new_tokens=6, disabled=True))
    assert res.calls == [] and " [" not in res.text and res.text.strip()


def test_chat_cli_subprocess():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "toolformer_app", "chat", "--max-new-tokens", "24", "--tools", "Calculator,Calendar",
         PROMPT],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "call(s)" in proc.stdout
    assert "[Calculator(" in proc.stdout, proc.stdout
    assert "\033[" not in proc.stdout  # not a TTY: no colour codes
