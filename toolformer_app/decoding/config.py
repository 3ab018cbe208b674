"""The decoding settings (``InferenceConfig``); the defaults follow the paper, section 4.2."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class InferenceConfig:
    """Decoding settings. Defaults follow the paper: greedy, k=10, at most one call."""

    max_new_tokens: int = 64
    top_k_call: int = 10  # start a call when " [" is among the top k next tokens; 1 = greedy, 0 = never
    max_calls: int = 1  # paper: at most one call per input
    disabled: bool = False  # "Toolformer (disabled)": p(" [") = 0
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling, only when temperature > 0
    seed: int | None = None  # sampling seed (a private torch.Generator: no global RNG state)
    max_call_tokens: int = 48  # a call still open after this many tokens is closed
    stop: tuple[str, ...] = ()  # stop strings, checked outside calls; excluded from the text
    tools: tuple[str, ...] | None = None  # names allowed from the registry; None = all
    ignore_eos: bool = False  # always produce max_new_tokens tokens (benchmarks)
    chat_template: bool = False  # wrap the prompt in the tokenizer's chat template
    # After " [", the tool name is decoded from a token trie of the enabled tools' names: a disabled
    # tool cannot be written. False: today's free decoding (a WikiSearch call on a facts suite).
    constrain_names: bool = True
    # With constrained names: the name is first read greedily from the trie of *every* known tool;
    # when the model prefers a disabled one, no call is written there (p(" [") x p(enabled name | " [")
    # decides), rather than forcing its second choice (a Calendar call after "The capital of Peru is").
    decline_disabled: bool = True
    # Call when p(" [") >= this (Chat's calibrated default, from the model card), instead of top-k.
    call_threshold: float | None = None
    # Per tool: call only when p(" [") >= the threshold of the tool whose name the model would write after it
    # (read greedily from the name trie; a tool without an entry takes ``call_threshold``). From the card.
    tool_thresholds: Mapping[str, float] | None = None
    # Tools whose input the decoder writes: after "[QA(", the clause written so far (``pipeline.sampling.
    # clause_before``, the rule that made the training calls) and ")", then the tool runs. The model decides only
    # whether to ask. For models finetuned on clause calls (the card's ``inference.clause_inputs``); () = the paper.
    clause_inputs: tuple[str, ...] = ()
