"""``decoding.threads.alone``: the work runs in a thread of its own that has ended when it returns."""

from __future__ import annotations

import threading

import pytest
import torch

from toolformer_app.decoding.threads import alone


def test_alone_returns_the_value_from_another_thread_that_has_ended():
    seen: list[threading.Thread] = []

    def work(a: int, *, b: int) -> torch.Tensor:
        seen.append(threading.current_thread())
        return torch.ones(4, 4) @ torch.full((4, 4), float(a + b))  # a parallel op: this thread's own team

    out = alone(work, 1, b=2)
    assert torch.equal(out, torch.full((4, 4), 12.0))
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()


def test_alone_raises_the_work_s_exception_in_the_caller():
    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        alone(fail)

