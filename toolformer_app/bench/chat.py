"""Chat serving: total tokens/s and time to first token with N concurrent sessions (the decoding server).

Each session sends --requests requests in turn, from a mix of prompts that call the Calculator
(few-shot) and prompts that call nothing; every answer is --max-new-tokens model-chosen tokens (eos
ignored), so the sessions do the same work at every concurrency. ``baseline_tok_s`` is one session
through the library's ``generate_with_tools`` on the same prompts. With --gradio, a few sessions also go
through the app's own API with ``gradio_client`` (127.0.0.1, bounded in count and time).
The few-shot prompts share their examples: with the prefix cache (on by default, as in Chat) the server
computes their KV once and prefills only each prompt's own question; "both" also measures every concurrency
without it (keys ending in "_no_prefix"). The server's own warm-up request is a prompt it has seen, as a
running Chat server has. The machine's speed drifts, so each concurrency is measured --repeats times, in turn
with what it is compared to (one session with the baseline run, the cache on with off), and rows hold medians
and ranges; ``one_session_vs_baseline`` is the median of adjacent pairs' ratios.
The last line (--json) is one JSON object: {"runs": [{"sessions", "total_tok_s", "ttft_p50_s",
"ttft_p95_s", "peak_rss_mb", "prefix_cache", "prefix_hits", "tokens_fed", ...}, ...], ...}.
``tokens_fed``: tokens through the model during the sessions (prompts, shared prefixes, decoding).
``raw_decode``: the machine's ceiling for batching, measured first: tok/s of the model's bare decode step
(random ids, a KV cache of 150 tokens, no server, no prefill) at each concurrency as a batch, and its ratio to
batch 1 (``x``). The sessions' ratio (``x_one_session``) stays below it by what prefills, joins and tool
calls cost; ``--raw-only`` measures only this.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time
from typing import Any

from toolformer_app.bench.inference import QUESTIONS, SHOTS
from toolformer_app.decoding.threads import alone

PLAIN = (
    "Once upon a time, in a small village by the sea,",
    "The history of the printing press begins",
    "Here is a short poem about the autumn rain:",
    "The three most important rules of cooking are",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="preset, hub id or directory (default: Chat's default model)")
    parser.add_argument("--sessions", default="1,4,8", help="concurrencies to measure, e.g. 1,4,8")
    parser.add_argument("--requests", type=int, default=2, help="requests per session")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-rows", type=int, default=8, help="rows the server decodes together")
    parser.add_argument("--gradio", type=int, default=0, metavar="N",
                        help="also run N concurrent sessions through the app's API with gradio_client (0: skip)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--prefix-cache", choices=("on", "off", "both"), default="on",
                        help="reuse the KV of shared prompt starts; both: measure with and without, in turn (default: on, as Chat)")
    parser.add_argument("--repeats", type=_at_least_one, default=3,
                        help="measure each concurrency this many times, interleaved with what it is compared to; medians")
    parser.add_argument("--raw-only", action="store_true",
                        help="measure only the bare decode step at each concurrency as a batch (the ceiling)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB; the peak so far


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else 0.0


def run(args: argparse.Namespace) -> int:
    import torch

    from toolformer_app import config, models
    from toolformer_app.decoding import InferenceConfig, run_with_tools
    from toolformer_app.tools import get_tool

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    name = args.model or config.default_chat_model()
    # Every torch call of the bench runs in a thread of its own (``alone``), as in the app, whose main thread
    # never runs torch: a team left alive in the main thread made the server's thread 1.6x slower.
    model, tok = alone(models.load, name)
    tools = {"Calculator": get_tool("Calculator")}
    prompts = [p for pair in zip([SHOTS + q for q in QUESTIONS], PLAIN * 2, strict=False) for p in pair]
    cfg = InferenceConfig(max_new_tokens=args.max_new_tokens, ignore_eos=True, tools=("Calculator",))
    sessions = [int(x) for x in args.sessions.split(",") if x.strip()]

    raw = alone(_raw_decode, model, sessions, args.repeats)
    print("bare decode step (the ceiling): " + ", ".join(
        f"batch {b}: {r['tok_s']} tok/s ({r['x']}x)" for b, r in raw.items()))
    if args.raw_only:
        if args.json:
            print(json.dumps({"raw_decode": raw, "model": name, "threads": torch.get_num_threads()}))
        return 0
    alone(run_with_tools, model, tok, prompts[0], tools, cfg)  # warm-up
    # A shared machine's speed drifts by tens of percent over minutes: what is compared (the baseline and one session,
    # the cache on and off) is measured in turn, --repeats times, and the medians are reported.
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.prefix_cache]
    baselines: list[float] = []
    ratios: list[float] = []
    decoder_ratios: list[float] = []  # the batch decoder alone at one row (no server thread) against the baseline
    runs: list[dict[str, Any]] = []
    for n in sessions:
        samples: dict[bool, list[dict[str, Any]]] = {pc: [] for pc in modes}
        for _ in range(args.repeats):
            if n == 1:
                baselines.append(alone(_baseline, model, tok, prompts, tools, cfg, args.requests))
            for pc in modes:
                samples[pc].append(_measure(model, tok, n, args, prompts, tools, cfg, prefix_cache=pc))
            if n == 1:
                ratios.append(samples[modes[0]][-1]["total_tok_s"] / baselines[-1])
                decoder_ratios.append(alone(_baseline, model, tok, prompts, tools, cfg, args.requests, batched=True)
                                      / baselines[-1])
        row = _summary(samples[modes[0]])
        if args.prefix_cache == "both":
            off = _summary(samples[False])
            row.update({f"{k}_no_prefix": off[k] for k in ("total_tok_s", "ttft_p50_s", "ttft_p95_s", "tokens_fed")})
        _print_row(row)
        runs.append(row)
    if not baselines:
        baselines = [alone(_baseline, model, tok, prompts, tools, cfg, args.requests) for _ in range(args.repeats)]
    baseline = statistics.median(baselines)
    print(f"baseline (generate_with_tools, one at a time): {baseline:.1f} tok/s (median of {len(baselines)}: "
          f"{', '.join(f'{b:.1f}' for b in baselines)})")
    one = next((r["total_tok_s"] for r in runs if r["sessions"] == 1), None)
    for row in runs:
        if one:
            row["x_one_session"] = round(row["total_tok_s"] / one, 2)
    report: dict[str, Any] = {"runs": runs, "baseline_tok_s": round(baseline, 2), "model": name,
                              "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
                              "repeats": args.repeats, "prefix_cache": args.prefix_cache, "raw_decode": raw}
    if ratios:  # each one-session run against the baseline run next to it in time
        report["one_session_vs_baseline"] = round(statistics.median(ratios), 3)
        report["one_session_vs_baseline_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
        # where a one-session gap lies: in the decoder (this ratio below 1 too) or around it, in the server
        report["one_row_decoder_vs_baseline"] = round(statistics.median(decoder_ratios), 3)
        print(f"one session against the baseline: {report['one_session_vs_baseline']} (server), "
              f"{report['one_row_decoder_vs_baseline']} (the batch decoder alone at one row, no server thread)")
    if args.gradio > 0:
        report["gradio"] = _through_gradio(args.gradio, name, args.max_new_tokens)
        print(f"through gradio_client: {report['gradio']}")
    if args.json:
        print(json.dumps(report))
    return 0


def _raw_decode(model: Any, batches: list[int], repeats: int, kv: int = 150, steps: int = 16) -> dict[int, dict]:
    """tok/s of the bare decode step at each batch size (median of ``repeats``, measured in turn) and its ratio
    to batch 1: the most that batching sessions can give on this machine."""
    import torch

    from toolformer_app.decoding import model_keeps_last

    device = getattr(model, "device", None) or next(model.parameters()).device
    vocab = int(model.config.vocab_size)
    last = {"logits_to_keep": 1} if model_keeps_last(model) else {}
    gen = torch.Generator().manual_seed(0)
    times: dict[int, list[float]] = {b: [] for b in sorted({1, *batches})}
    for _ in range(repeats):
        for b in times:
            ids = torch.randint(0, vocab, (b, kv), generator=gen).to(device)
            nxt = torch.randint(0, vocab, (b, 1), generator=gen).to(device)
            with torch.inference_mode():
                cache = model(input_ids=ids, use_cache=True).cache
                t0 = time.perf_counter()
                for _ in range(steps):
                    cache = model(input_ids=nxt, cache=cache, use_cache=True, **last).cache
                times[b].append((time.perf_counter() - t0) / steps)
    one = 1 / statistics.median(times[1])
    return {b: {"tok_s": round(b / statistics.median(t), 1), "x": round(b / statistics.median(t) / one, 2)}
            for b, t in times.items()}


def _baseline(model: Any, tok: Any, prompts: list[str], tools: dict[str, Any], cfg: Any, requests: int,
              batched: bool = False) -> float:
    """tok/s of the library's ``generate_with_tools``, one prompt after the other (one session's prompts); with
    ``batched``, of the batch decoder (``generate_batch``) on one prompt at a time, in this thread."""
    from toolformer_app.decoding import run_with_tools
    from toolformer_app.decoding.batch import generate_batch

    t0 = time.perf_counter()
    tokens = sum((generate_batch(model, tok, [prompt], tools, cfg)[0] if batched
                  else run_with_tools(model, tok, prompt, tools, cfg)).stats.tokens_generated
                 for prompt in prompts[: max(2, requests)])
    return tokens / (time.perf_counter() - t0)


_MEDIAN_KEYS = ("total_tok_s", "ttft_p50_s", "ttft_p95_s", "first_event_p50_s", "first_event_p95_s", "wall_s",
                "tokens_fed")


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One concurrency's row from its repeats: medians of the rates and times, their ranges, counts summed."""
    row = dict(samples[-1])
    for key in _MEDIAN_KEYS:
        row[key] = round(statistics.median(s[key] for s in samples), 3)
    for key in ("total_tok_s", "ttft_p95_s"):
        row[f"{key}_range"] = [min(s[key] for s in samples), max(s[key] for s in samples)]
    for key in ("requests", "calls", "errors", "prefix_hits"):
        row[key] = sum(s[key] for s in samples)
    row["peak_rss_mb"] = max(s["peak_rss_mb"] for s in samples)
    row["repeats"] = len(samples)
    return row


def _print_row(row: dict[str, Any]) -> None:
    print(f"{row['sessions']} session(s), median of {row['repeats']}: {row['total_tok_s']:.1f} tok/s total "
          f"(range {row['total_tok_s_range'][0]:.1f}-{row['total_tok_s_range'][1]:.1f}), time to first token p50 "
          f"{row['ttft_p50_s']} s, p95 {row['ttft_p95_s']} s (range {row['ttft_p95_s_range'][0]}-"
          f"{row['ttft_p95_s_range'][1]}), peak RSS {row['peak_rss_mb']} MB")
    if "total_tok_s_no_prefix" in row:
        print(f"  without the prefix cache: {row['total_tok_s_no_prefix']:.1f} tok/s total, time to first token p50 "
              f"{row['ttft_p50_s_no_prefix']} s, p95 {row['ttft_p95_s_no_prefix']} s")


def _measure(model: Any, tok: Any, n: int, args: argparse.Namespace, prompts: list[str], tools: dict[str, Any],
             cfg: Any, prefix_cache: bool) -> dict[str, Any]:
    """One concurrency on a fresh server: its row of the report."""
    from toolformer_app.decoding.server import DecodingServer, Limits

    limits = Limits(max_rows=args.max_rows, max_new_tokens=max(256, args.max_new_tokens), prefix_cache=prefix_cache)
    server = DecodingServer(model, tok, limits)
    list(server.submit(prompts[0], tools, cfg).events(timeout=300))  # warm-up of this server
    st = server.decoder.stats
    before = {k: getattr(st, k) for k in ("tokens", "decode_s", "prefill_s", "merge_s", "forward_passes", "slots")}
    tokens, calls, ttft, first_event, errors, wall = _sessions(server, n, args.requests, prompts, tools, cfg)
    server.close()
    stats = server.decoder.stats
    row = {"sessions": n, "total_tok_s": round(tokens / wall, 2), "ttft_p50_s": _pct(ttft, 0.5),
           "ttft_p95_s": _pct(ttft, 0.95), "first_event_p50_s": _pct(first_event, 0.5),
           "first_event_p95_s": _pct(first_event, 0.95), "peak_rss_mb": _rss_mb(), "requests": n * args.requests,
           "calls": calls, "errors": len(errors), "wall_s": round(wall, 2), "prefix_cache": prefix_cache,
           "prefix_hits": stats.prefix_hits, "tokens_fed": stats.tokens - before["tokens"],
           # where the server's time went during the sessions (the rest of the wall: waiting for requests, tools)
           "phase_s": {**{k[:-2]: round(getattr(stats, k) - before[k], 2) for k in ("decode_s", "prefill_s", "merge_s")},
                       "wall": round(wall, 2)},  # this run's (a row's wall_s is the median of its repeats)
           "forward_passes": stats.forward_passes - before["forward_passes"],
           "decode_slots": stats.slots - before["slots"]}
    print(f"  {n} session(s){'' if prefix_cache else ' (no prefix cache)'}: {row['total_tok_s']:.1f} tok/s total, "
          f"time to first token p50 {row['ttft_p50_s']} s, p95 {row['ttft_p95_s']} s (first event, a call's start "
          f"included: p50 {row['first_event_p50_s']} s, p95 {row['first_event_p95_s']} s), {calls} calls, "
          f"{len(errors)} errors, {stats.prefix_hits} prefix hits; server time: decode {row['phase_s']['decode']} s, "
          f"prefill {row['phase_s']['prefill']} s, merge {row['phase_s']['merge']} s of {row['wall_s']} s wall")
    return row


def _sessions(server: Any, n: int, requests: int, prompts: list[str], tools: dict[str, Any],
              cfg: Any) -> tuple[int, int, list[float], list[float], list[str], float]:
    """n threads, each sending ``requests`` requests in turn: (tokens, calls, times to first token, times to
    first event, errors, wall). The first event may be a call's start, which Chat shows before its text."""
    from toolformer_app.decoding import Done, TextChunk

    ttft: list[float] = []
    first_event: list[float] = []
    tokens = [0] * n
    calls = [0] * n
    errors: list[str] = []

    def session(i: int) -> None:
        for r in range(requests):
            prompt = prompts[(i * requests + r) % len(prompts)]
            t_sub = time.perf_counter()
            first = seen = None
            try:
                for event in server.submit(prompt, tools, cfg).events(timeout=300):
                    if seen is None and not isinstance(event, Done):
                        seen = time.perf_counter() - t_sub
                    if first is None and isinstance(event, TextChunk):
                        first = time.perf_counter() - t_sub
                    if isinstance(event, Done):
                        tokens[i] += event.stats.tokens_generated
                        calls[i] += len(event.calls)
            except Exception as exc:  # counted, never raised: the bench reports it
                errors.append(f"{type(exc).__name__}: {exc}")
            if first is not None:
                ttft.append(first)
            if seen is not None:
                first_event.append(seen)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(tokens), sum(calls), ttft, first_event, errors, time.perf_counter() - t0


def _through_gradio(n: int, model_name: str, max_new_tokens: int) -> dict[str, Any]:
    """n concurrent sessions, one request each, through the app's ``/chat`` endpoint on 127.0.0.1."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    from toolformer_app.bench.inference import QUESTIONS as QS
    from toolformer_app.ui import build_demo, launch_kwargs

    demo = build_demo().queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_kwargs())
    times: list[float] = []
    errors: list[str] = []
    try:
        def session(i: int) -> None:
            client = Client(url, verbose=False)
            t0 = time.perf_counter()
            try:
                client.predict(SHOTS + QS[i % len(QS)], [], [], model_name, 10, 1, ["Calculator"], max_new_tokens,
                               True, "plain", False, 0.0, True, api_name="/chat")
                times.append(time.perf_counter() - t0)
            except Exception as exc:  # one line per failure
                errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

        threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        wall = time.perf_counter() - t0
    finally:
        demo.close()
    return {"sessions": n, "ok": len(times), "errors": len(errors), "wall_s": round(wall, 2),
            "latency_p50_s": round(statistics.median(times), 2) if times else None}
