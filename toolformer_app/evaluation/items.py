"""What a suite is made of: ``Item`` (one prompt and its accepted answers), ``SuiteError``, the suites' names,
sizes and version, the fixed clock, and the tools each kind of item may call (paper, section 4.2).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from toolformer_app.evaluation import scoring

SUITE_VERSION = 1
SEED = 20230130
CLOCK = datetime.date(2023, 1, 30)  # the paper's example date: "Today is Monday, January 30, 2023."
KINDS = ("math", "facts", "dates")
BUILTIN = ("math", "facts", "dates")
PERPLEXITY = "perplexity"
FACTS_PLAIN = "facts_plain"  # the facts items as written, without the LAMA instruction (forgetting shows here)
PLAIN = "plain"  # spurious calls: the first sentence of each held-out extract, decoded with tools
SIZES = {"math": 200, "facts": 200, "dates": 200}
# Items from DEV_OFFSET on are the dev split: sweeps and choices are made there (`eval --offset 100`); every
# reported figure uses the items before it (`eval --limit 100`), so no setting is tuned on what is reported.
DEV_OFFSET = 100

# Tools allowed per kind (paper, section 4.2: all tools, but WikiSearch is disabled for LAMA).
ALL_TOOLS = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")
TOOLS_BY_KIND: dict[str, tuple[str, ...]] = {
    "math": ALL_TOOLS,
    "facts": tuple(t for t in ALL_TOOLS if t != "WikiSearch"),
    "dates": ALL_TOOLS,
    PLAIN: ALL_TOOLS,
}


class SuiteError(ValueError):
    """A suite that cannot be used; the message is one line naming the file and line."""


@dataclass(frozen=True)
class Item:
    """One example. ``answers`` holds the accepted answers (aliases); the first is the canonical one."""

    id: str
    kind: str
    prompt: str
    answers: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def answer(self) -> str:
        return self.answers[0]

    @property
    def answer_type(self) -> str:
        return scoring.answer_type(self.kind, self.answer)

    def to_dict(self) -> dict[str, Any]:
        answer: str | list[str] = self.answers[0] if len(self.answers) == 1 else list(self.answers)
        row: dict[str, Any] = {"id": self.id, "kind": self.kind, "prompt": self.prompt, "answer": answer}
        if self.meta:
            row["meta"] = self.meta
        return row

