"""Where one Chat session through the decoding server loses against ``generate_with_tools``. Variants measured in
turn (first run at commit 86ad38c).

    python experiments/decoding/one_request_server_gap.py [VARIANTS] [REPEATS]
"""

import queue
import statistics
import sys
import threading
import time

from toolformer_app import config, models
from toolformer_app.bench.chat import PLAIN, QUESTIONS, SHOTS
from toolformer_app.decoding import Done, InferenceConfig, run_with_tools
from toolformer_app.decoding.batch import generate_batch
from toolformer_app.decoding.server import _END, DecodingServer, Limits
from toolformer_app.tools import get_tool

model, tok = models.load(config.default_chat_model())
tools = {"Calculator": get_tool("Calculator")}
prompts = [p for pair in zip([SHOTS + q for q in QUESTIONS], PLAIN * 2, strict=False) for p in pair][:2]
cfg = InferenceConfig(max_new_tokens=32, ignore_eos=True, tools=("Calculator",))
run_with_tools(model, tok, prompts[0], tools, cfg)


def base():
    return sum(run_with_tools(model, tok, p, tools, cfg).stats.tokens_generated for p in prompts)


def batch_main():
    return sum(generate_batch(model, tok, [p], tools, cfg)[0].stats.tokens_generated for p in prompts)


def batch_thread():
    box = []
    t = threading.Thread(target=lambda: box.append(batch_main()))
    t.start()
    t.join()
    return box[0]


def server_variant(**kw):
    mode = kw.pop("mode", "stream")

    def f():
        s = DecodingServer(model, tok, Limits(max_new_tokens=256, **kw))
        list(s.submit(prompts[0], tools, cfg).events(timeout=300))
        t0 = time.perf_counter()
        n = 0

        def sess():
            nonlocal n
            for p in prompts:
                tk = s.submit(p, tools, cfg)
                if mode == "stream":
                    for e in tk.events(timeout=300):
                        if isinstance(e, Done):
                            n += e.stats.tokens_generated
                else:  # drain every 0.25 s
                    done = False
                    while not done:
                        time.sleep(0.25)
                        while True:
                            try:
                                e = tk._queue.get_nowait()
                            except queue.Empty:
                                break
                            if e is _END:
                                done = True
                                break
                            if isinstance(e, Done):
                                n += e.stats.tokens_generated

        th = threading.Thread(target=sess)
        th.start()
        th.join()
        dt = time.perf_counter() - t0
        s.close()
        return n, dt

    return f


variants = {
    "base": base,
    "batch_main": batch_main,
    "batch_thread": batch_thread,
    "server": server_variant(),
    "server_nogather": server_variant(gather_s=0.0),
    "server_noprefix": server_variant(prefix_cache=False),
    "server_drain": server_variant(mode="drain"),
}
pick = sys.argv[1].split(",") if len(sys.argv) > 1 else list(variants)
res = {k: [] for k in pick}
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
    for k in pick:
        t0 = time.perf_counter()
        out = variants[k]()
        if isinstance(out, tuple):
            n, dt = out
        else:
            n, dt = out, time.perf_counter() - t0
        res[k].append(n / dt)
        print(k, round(n / dt, 2), flush=True)
b = statistics.median(res["base"]) if "base" in res else None
for k, v in res.items():
    print(
        f"{k:18s} median {statistics.median(v):6.2f} tok/s  "
        + (f"{statistics.median(v) / b:.3f} of base" if b else ""),
        flush=True,
    )
