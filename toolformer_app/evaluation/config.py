"""What one evaluation run does (``EvalConfig``), its three modes, and how a caller follows or stops it."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolformer_app.evaluation import suites as suite_lib
from toolformer_app.evaluation.suites import SuiteError

MODES = ("base", "tools", "disabled")
Progress = Callable[[str, int, int], None]  # (task, done, total), e.g. for a UI progress bar


class EvaluationCancelled(Exception):
    """Raised by a progress callback to stop a run between items (the UI's Stop); nothing is written."""


def paper_top_k() -> int:
    """The paper's k = 10: "tools" mode starts a call when " [" is among the k likeliest next tokens."""
    from toolformer_app.decoding import InferenceConfig  # defined there once

    return InferenceConfig().top_k_call


@dataclass
class EvalConfig:
    """What one evaluation run does. The defaults follow the paper (k=10, one call, greedy)."""

    suites: tuple[str, ...] = ("math", "facts", "dates", "perplexity")
    suite_files: tuple[str, ...] = ()  # custom JSONL suites, named by their file stem
    limit: int | None = None  # the first N items of each suite (and N held-out texts), after ``offset``
    offset: int = 0  # items skipped first: DEV_OFFSET gives the dev split that sweeps choose on
    modes: tuple[str, ...] = MODES
    top_k_call: int = field(default_factory=paper_top_k)  # "tools" mode: call when " [" is in the top k
    max_calls: int = 1
    ks: tuple[int, ...] = ()  # Table 9 sweep over k, on every accuracy suite
    max_new_tokens: int = 32
    ppl_tokens: int = 128  # tokens per held-out extract (a fixed budget)
    ppl_batch_size: int = 8
    seed: int = 0
    clock: datetime.date = suite_lib.CLOCK  # "today" for the dates suite and the Calendar tool
    constrain_names: bool = True  # only the suite's allowed tools can be written (False: free names)
    call_threshold: float | None = None  # "tools" mode calls when p(" [") reaches this, instead of top-k
    # With ``call_threshold``: per-tool thresholds (Chat's calibrated mode); None: the model card's, if any
    tool_thresholds: dict[str, float] | None = None
    # Tools whose input the decoder writes (the clause so far); None: the model card's (() for most models)
    clause_inputs: tuple[str, ...] | None = None
    thresholds: tuple[float, ...] = ()  # Table 9 analogue: a sweep over call thresholds
    batch_size: int = 16  # items decoded together in each mode (1: one at a time; same outputs in float32)
    base_cache: bool = True  # reuse the base mode's rows from earlier runs (base_cache.py; float32 bases by name)

    def validate(self) -> None:
        known = suite_lib.BUILTIN + (suite_lib.FACTS_PLAIN, suite_lib.PERPLEXITY, suite_lib.PLAIN)
        unknown = [s for s in self.suites if s not in known]
        if unknown:
            raise SuiteError(f"unknown suite {unknown[0]!r} (expected {', '.join(known)})")
        bad_modes = [m for m in self.modes if m not in MODES]
        if bad_modes:
            raise SuiteError(f"unknown mode {bad_modes[0]!r} (expected {', '.join(MODES)})")
        if not self.suites and not self.suite_files:
            raise SuiteError("no suite selected")
        if self.limit is not None and self.limit < 1:
            raise SuiteError("--limit must be at least 1")
        if self.offset < 0:
            raise SuiteError("--offset must be at least 0")
        if any(k < 0 for k in self.ks) or self.top_k_call < 0:
            raise SuiteError("k must be >= 0")
        if any(not 0 <= t <= 1 for t in (*self.thresholds, self.call_threshold or 0.0)):
            raise SuiteError("call thresholds must be in [0, 1]")
        if self.batch_size < 1:
            raise SuiteError("--batch-size must be at least 1")
        if self.max_new_tokens < 1 or self.ppl_tokens < 2:
            raise SuiteError("max_new_tokens must be >= 1 and ppl_tokens >= 2")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["clock"] = self.clock.isoformat()
        return d
