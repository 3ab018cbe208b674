"""Why torch ran slower in a second thread (one Chat session's gap to ``generate_with_tools``), three layouts.

    python experiments/decoding/omp_teams.py

Seconds for 20 forward passes of the default model on 64 tokens:
  A: load and run in one new thread, then run in the main thread after that thread ended;
  B: load and run in the main thread, then in a new thread (the main thread's OpenMP team still alive), then main;
  C: load in the main thread, run only in a new thread.
On 2 CPU cores (AVX512-BF16; commit 707e388): A 2.16 / 2.11 s, B 2.10 / 3.34 / 2.17 s, C 3.32 s: a thread is slow only while
another thread's OpenMP team is alive, not because it is not the main thread.
"""

import threading
import time

import torch

from toolformer_app import config, models

state: dict = {}


def load() -> None:
    state["model"], _ = models.load(config.default_chat_model())


def passes(layout: str, where: str, n: int = 20) -> None:
    ids = torch.randint(0, 1000, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        state["model"](input_ids=ids)  # warm-up in this thread
        t0 = time.perf_counter()
        for _ in range(n):
            state["model"](input_ids=ids)
    print(f"{layout} {where}: {time.perf_counter() - t0:.2f} s for {n} passes", flush=True)


def in_thread(fn, *args) -> None:
    thread = threading.Thread(target=fn, args=args)
    thread.start()
    thread.join()


def layout_a() -> None:
    def all_in_one() -> None:
        load()
        passes("A", "new thread (loaded here)")
    in_thread(all_in_one)
    passes("A", "main thread, after that thread ended")


def layout_b() -> None:
    load()
    passes("B", "main thread")
    in_thread(passes, "B", "new thread, main's team alive")
    passes("B", "main thread again")


def layout_c() -> None:
    load()
    in_thread(passes, "C", "new thread (main only loaded)")


if __name__ == "__main__":
    import subprocess
    import sys

    if len(sys.argv) > 1:
        {"A": layout_a, "B": layout_b, "C": layout_c}[sys.argv[1]]()
    else:  # each layout in a fresh process: teams never outlive their process
        for layout in "ABC":
            subprocess.run([sys.executable, __file__, layout], check=True)
