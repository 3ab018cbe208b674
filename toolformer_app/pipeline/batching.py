"""How the pipeline's model passes are batched, and what they cost.

Texts of similar length share a pass (``length_groups``): a padded token costs as much as a real one,
so a batch is split where padding would start to cost, under a token budget per pass.
``TokenCounter`` counts the tokens sent through the model and the seconds spent, per stage and tool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenCounter:
    """Tokens sent through the model, and seconds spent, per stage (and per tool and stage)."""

    positions: int = 0
    sampling: int = 0
    scoring: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    tool_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def timed(self, stage: str, tool: str | None = None):
        return _Timer(self, stage, tool)

    def add(self, stage: str, seconds: float, tool: str | None = None) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        if tool is not None:
            per = self.tool_seconds.setdefault(tool, {})
            per[stage] = per.get(stage, 0.0) + seconds

    @property
    def total(self) -> int:
        return self.positions + self.sampling + self.scoring


class _Timer:
    def __init__(self, counter: TokenCounter, stage: str, tool: str | None):
        self.counter, self.stage, self.tool = counter, stage, tool

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.counter.add(self.stage, time.perf_counter() - self.start, self.tool)


MAX_PADDING = 0.1  # rows share a pass only if padding stays under this share of its tokens
POSITION_PASS_TOKENS = 4096  # rows x width per position pass (the prefix read in place)
POSITION_PASS_COPY_TOKENS = 8192  # rows x (prefix + width) when each row holds a copy of the prefix (~0.4 GB fp32)
SCORING_PASS_TOKENS = 2048  # rows x width per loss pass (measured fastest here between 1k and 4k)


def length_groups(lengths: list[int], max_padding: float = MAX_PADDING, max_rows: int = 512,
                  max_tokens: int | None = None, overhead: int = 0) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length (ascending): each padded by at most
    ``max_padding`` of its tokens, at most ``max_rows`` long, and with rows x (overhead + longest)
    at most ``max_tokens`` (a single row may exceed it).

    A padded token costs as much as a real one, and a batch of rows of one length is about as fast
    per token as a wide batch: so a batch is split where padding would start to cost.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    total = 0
    for i in order:
        n = len(groups[-1]) + 1 if groups else 0
        fits = (groups and n <= max_rows and n * lengths[i] <= (1 + max_padding) * (total + lengths[i])
                and (max_tokens is None or n * (overhead + lengths[i]) <= max_tokens))
        if fits:
            groups[-1].append(i)
            total += lengths[i]
        else:
            groups.append([i])
            total = lengths[i]
    return groups
