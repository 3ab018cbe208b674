"""Run torch work in a thread that ends with it, so that one OpenMP team is alive at a time.

libgomp gives each thread that enters a parallel region a team of worker threads of its own, and that team lives
as long as the thread. While a second team is alive, libgomp counts more threads than cores and cuts its workers'
busy wait between regions short, so each of a forward pass's many small parallel ops pays for waking them up. On
this 2-core machine 20 forward passes took 2.1 s in the main thread and 3.3 s in a second thread while the main
thread's team lived, and 2.2 s in a thread when no other team was alive
(``python experiments/decoding/omp_teams.py``). The app never runs torch in its main thread (the model
loads in ``toolformer-preload``, Chat decodes in the server's thread), and the benches that compare two decoders
run each in a thread of its own through ``alone``, as the app does, rather than one in the main thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def alone(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a new thread, joined: its OpenMP team ends with it. Exceptions pass through."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="toolformer-torch", daemon=True)
    thread.start()
    thread.join()
    trim_heap()
    if "error" in box:
        raise box["error"]
    return box["value"]


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    Each thread that allocates gets a malloc arena of its own, and a thread's freed tensors stay in its arena
    after it ends, so a process that runs torch in thread after thread holds their high-water marks at once.
    """
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
