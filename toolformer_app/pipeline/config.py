"""The pipeline's settings and records, shared by the library, the CLI and the UI."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from toolformer_app.tools.base import Thresholds, Tool


@dataclass
class PipelineConfig:
    """Sampling and filtering settings (paper, Appendix A). ``None`` means "the tool's default".

    tau_s: keep positions i with p(" [" | P(x), x_<i) > tau_s.
    k: at most k positions per text and tool, highest p_i first.
    m: calls sampled per position (one batch).
    tau_f: keep a call if L- - L+ >= tau_f.
    temperature: sampling temperature for calls.
    max_call_tokens: a sampled call that has not closed after this many tokens is discarded.
    batch_size: texts annotated together (results are written after each batch). Inside a batch,
        passes are grouped by length under token budgets, and all its positions sample together:
        a larger batch means fuller decoding steps (measured: 8 -> 32 cut sampling time by ~40%).
    seed: sampling is seeded per (seed, text, tool, position), so runs and resumes are reproducible.
    prefill_tool_name: feed "Tool(" after " [" instead of letting the model write the name. The paper
        samples the name too (False); a 135M model then writes no name in most samples (measured: 65%
        of Calculator samples on wiki text were not calls), so small models need this to yield calls.
    sample_memory_mb: memory for the sampling batch (the calls' keys and values, and attention
        scores): it sets how many rows decode together. It changes speed, never the samples.
    placebo: a placebo control (not in the paper): L- also takes the loss with the result of an
        unrelated call of the same tool, so a call that helps only through a generic prefix effect
        is rejected.
    clause_calls: tools (not in the paper) that get one more candidate at each chosen position, whose
        input is the clause the text has written so far ("Nairobi is the capital of" -> QA(Nairobi is
        the capital of)); the filter decides it like any sampled call. A 135M model's own QA inputs are
        mostly noise ("[QA(titleplate)]": 2 of 32 kept QA calls borne out in a wiki stage), while QA's
        reader completes a statement from its best passage on 72.5% of a dev set of facts.
    """

    tools: tuple[str, ...] = ("Calculator", "Calendar")
    tau_s: float | None = None
    k: int | None = None
    m: int | None = None
    tau_f: float | None = None
    temperature: float = 1.0
    max_call_tokens: int = 32
    batch_size: int = 32
    seed: int = 0
    prefill_tool_name: bool = True
    placebo: bool = False
    sample_memory_mb: int = 256
    clause_calls: tuple[str, ...] = ()

    def thresholds(self, tool: Tool) -> Thresholds:
        d = tool.thresholds
        return Thresholds(
            tau_s=d.tau_s if self.tau_s is None else self.tau_s,
            k=d.k if self.k is None else self.k,
            m=d.m if self.m is None else self.m,
            tau_f=d.tau_f if self.tau_f is None else self.tau_f,
        )

    def validate(self) -> None:
        """One-line errors for impossible settings, before any model pass."""
        if self.tau_s is not None and not 0.0 <= self.tau_s < 1.0:
            raise ValueError(f"tau_s must be in [0, 1), got {self.tau_s}")
        for name in ("k", "m"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 100:
                raise ValueError(f"{name} must be between 1 and 100, got {value}")
        if not 0.0 < self.temperature <= 5.0:
            raise ValueError(f"temperature must be in (0, 5], got {self.temperature}")
        if not 4 <= self.max_call_tokens <= 256:
            raise ValueError(f"max_call_tokens must be between 4 and 256, got {self.max_call_tokens}")
        if not 1 <= self.batch_size <= 512:
            raise ValueError(f"batch_size must be between 1 and 512, got {self.batch_size}")
        if not 16 <= self.sample_memory_mb <= 1_000_000:
            raise ValueError(f"sample_memory_mb must be at least 16, got {self.sample_memory_mb}")
        if not self.tools:
            raise ValueError("choose at least one tool")

    def to_dict(self) -> dict[str, Any]:
        # JSON has no tuples: write lists, so a saved run compares equal to the settings that made it
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        names = {f.name for f in fields(cls)}
        # the mirror of to_dict: every list was a tuple setting (no setting is a list)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def is_kept(loss_reduction: float | None, tau_f: float) -> bool:
    """The paper's keep rule, the one place it is written: L- - L+ >= tau_f (a call without a result,
    hence without a loss reduction, is never kept)."""
    return loss_reduction is not None and loss_reduction >= tau_f


@dataclass
class Candidate:
    """One sampled call c at position i of a text, with every number needed to re-filter it.

    token_pos: i, the index in x's tokens of the first token after the call.
    char_pos: where e(c, r) is inserted in the text (a token boundary mapped to characters).
    loss_plain = L_i(eps), loss_empty = L_i(e(c, eps)), loss_result = L_i(e(c, r)) = L+.
    loss_reduction = min(loss_plain, loss_empty) - loss_result = L- - L+ (None without a result).
    logprobs_*: log p(x_j) for j = i..i+4 under each condition (the UI's per-token heat map).
    """

    text_id: str
    tool: str
    token_pos: int
    char_pos: int
    p_i: float
    input: str
    result: str | None = None
    reason: str = ""
    loss_plain: float | None = None
    loss_empty: float | None = None
    loss_result: float | None = None
    loss_reduction: float | None = None
    placebo_result: str | None = None  # with the placebo control: r', an unrelated call's result
    loss_placebo: float | None = None  # L_i(e(c, r')); then L- = min(L(eps), L(e(c, eps)), L(e(c, r')))
    next_tokens: list[str] = field(default_factory=list)
    logprobs_plain: list[float] = field(default_factory=list)
    logprobs_empty: list[float] = field(default_factory=list)
    logprobs_result: list[float] = field(default_factory=list)

    @property
    def call(self) -> str:
        from toolformer_app.calls import linearize

        return linearize(self.tool, self.input, self.result, leading_space=False)

    def kept(self, tau_f: float) -> bool:
        return is_kept(self.loss_reduction, tau_f)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["call"] = self.call
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def checked(cls, d: Any, text: str | None = None) -> Candidate:
        """``from_dict`` for untrusted rows (an upload): every field checked, ValueError naming the first bad one.

        Numbers must be finite (JSON NaN / Infinity and strings are refused), the tool an identifier,
        and ``char_pos`` inside ``text`` when it is known, so the filter and C* never see bad data.
        """
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in ("text_id", "tool", "token_pos", "char_pos", "p_i", "input") if k not in d]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not isinstance(d["text_id"], (str, int)) or isinstance(d["text_id"], bool):
            raise ValueError("text_id must be a string")
        if not isinstance(d["tool"], str) or not _IDENTIFIER.fullmatch(d["tool"]):
            raise ValueError("tool must be a tool name (letters, digits, _)")
        for key in ("token_pos", "char_pos"):
            if not isinstance(d[key], int) or isinstance(d[key], bool) or d[key] < 0:
                raise ValueError(f"{key} must be a whole number >= 0")
        if text is not None and d["char_pos"] > len(text):
            raise ValueError(f"char_pos {d['char_pos']} is past the end of its text ({len(text)} characters)")
        for key in ("p_i", "loss_plain", "loss_empty", "loss_result", "loss_reduction"):
            value = d.get(key)
            if (value is not None or key == "p_i") and not _finite(value):
                raise ValueError(f"{key} must be a finite number")
        if not isinstance(d["input"], str):
            raise ValueError("input must be a string")
        if not isinstance(d.get("result"), (str, type(None))) or not isinstance(d.get("reason", ""), str):
            raise ValueError("result and reason must be strings")
        if not isinstance(d.get("next_tokens", []), list) or not all(isinstance(t, str) for t in d.get("next_tokens", [])):
            raise ValueError("next_tokens must be a list of strings")
        for key in ("logprobs_plain", "logprobs_empty", "logprobs_result"):
            value = d.get(key, [])
            if not isinstance(value, list) or not all(_finite(v) for v in value):
                raise ValueError(f"{key} must be a list of finite numbers")
        return cls.from_dict({**d, "text_id": str(d["text_id"])})


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


STAGES = (
    "texts_seen",
    "texts_selected",
    "positions_over_tau_s",
    "samples_drawn",
    "samples_skipped",
    "unclosed",
    "malformed",
    "wrong_tool",
    "duplicates",
    "executed",
    "no_result",
    "dropped_by_heuristic",
    "scored",
)
