"""The same forward passes in the main thread and in a new thread (one Chat session's gap to the library; commit
9d0e168).

    python experiments/decoding/thread_speed.py
    OMP_WAIT_POLICY=PASSIVE python experiments/decoding/thread_speed.py

Prints seconds for 20 forward passes of the default model on 64 tokens: main thread, a new thread, the main
thread again. On a 2-core machine the new thread was 1.6-1.8x slower (OpenMP gives it a team of its own while
the main thread's stays).
"""

import threading
import time

import torch

from toolformer_app import config, models

model, tok = models.load(config.default_chat_model())
ids = torch.randint(0, 1000, (1, 64), generator=torch.Generator().manual_seed(0))


def forward_passes(where: str, n: int = 20) -> None:
    with torch.inference_mode():
        model(input_ids=ids)  # warm-up in this thread
        t0 = time.perf_counter()
        for _ in range(n):
            model(input_ids=ids)
    print(f"{where}: {time.perf_counter() - t0:.2f} s for {n} passes ({torch.get_num_threads()} torch threads)")


forward_passes("main thread")
thread = threading.Thread(target=forward_passes, args=("new thread",))
thread.start()
thread.join()
forward_passes("main thread again")
