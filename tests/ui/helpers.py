"""Small synthetic runs for the handler tests (no model pass)."""

from __future__ import annotations

from typing import Any

TEXT = "The orchard has 36 rows of 24 apple trees, so it holds 864 trees in all."


def candidate(tool: str = "Calculator", reduction: float | None = 1.0, char_pos: int = 54, token_pos: int = 17,
              text_id: str = "1", inp: str = "36 * 24", result: str | None = "864", reason: str = "") -> dict[str, Any]:
    from toolformer_app.pipeline import Candidate

    scored = reduction is not None
    c = Candidate(
        text_id=text_id, tool=tool, token_pos=token_pos, char_pos=char_pos, p_i=0.45, input=inp,
        result=result if scored else None, reason=reason if not scored else "",
        loss_plain=2.3 if scored else None, loss_empty=2.4 if scored else None,
        loss_result=(2.3 - reduction) if scored else None, loss_reduction=reduction,
        next_tokens=[" ", "8", "6", "4", " trees"] if scored else [],
        logprobs_plain=[-0.4, -3.4, -3.6, -2.2, -3.5] if scored else [],
        logprobs_empty=[-0.5, -3.5, -3.6, -2.3, -3.6] if scored else [],
        logprobs_result=[-0.3, -2.0, -0.1, -0.01, -3.6] if scored else [],
    )
    return c.to_dict()


def run(reductions=(1.5, 0.8, 0.2, -0.3), tools=("Calculator",), with_texts: bool = True) -> dict[str, Any]:
    cands = []
    for i, r in enumerate(reductions):
        tool = tools[i % len(tools)]
        cands.append(candidate(tool=tool, reduction=r, inp=f"36 * {24 + i}", result=str(36 * (24 + i))))
    cands.append(candidate(reduction=None, inp="36 *", reason="incomplete expression"))
    texts = [{"text_id": "1", "text": TEXT, "tokens": [], "char_starts": [], "position_scores": {}, "counts": {}}]
    return {"texts": texts if with_texts else [], "candidates": cands, "tools": list(tools), "config": {},
            "model": "test", "source": "test"}


def run_sessions(sessions: list, timeout_s: float) -> None:
    """Start every soak session (a thread), wait for all, and fail if one is still running after ``timeout_s``."""
    for s in sessions:
        s.start()
    for s in sessions:
        s.join(timeout=timeout_s)
    assert not any(s.is_alive() for s in sessions), "a session did not finish in bounded time"


def is_one_line_error(message: str) -> bool:
    """What a refused request must show: one non-empty line, no traceback."""
    return bool(message.strip()) and "\n" not in message.strip() and "Traceback" not in message
