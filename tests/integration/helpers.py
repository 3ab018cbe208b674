"""Shared pieces of the real-model integration tests."""

from __future__ import annotations

# Two few-shot Calculator calls: prompts that start with them call the tool (batched and prefix-cache tests).
SHOTS = (
    "The orchard has 36 rows of 24 apple trees, so it holds [Calculator(36 * 24) -> 864] 864 trees in all.\n"
    "Of the 250 students who sat the exam, 215 passed, a pass rate of [Calculator(215 / 250) -> 0.86] 86%.\n"
)
