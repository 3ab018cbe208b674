"""Evaluate tab: the zero-shot suites (paper, section 4) in three modes, and their table.

Library calls: ``evaluation.runner.evaluate`` (in a worker thread, with a progress callback that
stops it between items on Stop, and an output dir in the data dir) and ``evaluation.runner.format_table`` (Markdown). Nothing is computed here.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr

from toolformer_app import config
from toolformer_app.ui import render, runtime

SUITES = ("math", "facts", "facts_plain", "dates", "perplexity", "plain")
MODES = ("base", "tools", "disabled")


MAX_PUBLIC_EVALS = 20  # on a public deployment the newest evaluation folders are kept, older ones removed
HEARTBEAT_S = 10.0  # a run whose page stopped asking for updates (closed tab, lost client) stops too


MAX_SWEEP_VALUES = 8  # distinct values per sweep: each one decodes every item of every suite again
MAX_SWEEP_K = 50  # the k slider's range


def _numbers(text: str | None, kind: type, what: str) -> tuple:
    """The distinct values of a comma-separated sweep field, in order, at most MAX_SWEEP_VALUES (a warning
    says what was dropped); gr.Error (one line) for a value that is not a number or out of range."""
    values: list = []
    try:
        for raw in (text or "").replace(" ", "").split(","):
            if raw and kind(raw) not in values:
                values.append(kind(raw))
    except (ValueError, OverflowError):
        raise gr.Error(f"{what}: comma-separated numbers, e.g. {'0,1,3,10' if kind is int else '0.01,0.05'}.") \
            from None
    low, high = (0, MAX_SWEEP_K) if kind is int else (0.0, 1.0)
    bad = next((v for v in values if not low <= v <= high), None)  # NaN fails both comparisons
    if bad is not None:
        raise gr.Error(f"{what}: every value must be between {low:g} and {high:g}.")
    if len(values) > MAX_SWEEP_VALUES:
        gr.Warning(f"{what}: {len(values)} distinct values; only the first {MAX_SWEEP_VALUES} are swept.")
        values = values[:MAX_SWEEP_VALUES]
    return tuple(values)


def _sweep_budget(limit: int, suites: list[str], ks: tuple, thresholds: tuple, cap: int) -> int:
    """Items per suite once the sweeps are counted: items × sweep values × suites must stay within
    TOOLFORMER_MAX_EVAL_ITEMS (each sweep value decodes every item of every suite once more)."""
    values = len(ks) + len(thresholds)
    if not values:
        return limit
    passes = values * len(suites)
    if passes > cap:
        raise gr.Error(f"{values} sweep values × {len(suites)} suites is more than TOOLFORMER_MAX_EVAL_ITEMS "
                       f"({cap}) items: sweep fewer values or suites, or use the `eval` command.")
    if limit * passes > cap:
        gr.Warning(f"Items per suite cut to {cap // passes}: items × sweep values × suites is capped at {cap} "
                   "(TOOLFORMER_MAX_EVAL_ITEMS).")
        return cap // passes
    return limit


@runtime.gpu_bound
def run_evaluation(model_name: str, suites: list[str] | None, modes: list[str] | None, limit: float,
                   top_k: float, ks: str = "", thresholds: str = "", progress=gr.Progress()):
    """Generator: (Markdown table, results.json path) for the model on the chosen suites.

    The run goes on in a worker thread and this generator yields every second: Stop (or a client's
    cancel) closes the generator, and the worker stops after the item it is on, writing nothing.
    """
    from toolformer_app.evaluation import runner
    from toolformer_app.evaluation.suites import SuiteError
    from toolformer_app.models import ModelLoadError

    suites = [s for s in (suites or []) if s in SUITES]
    modes = [m for m in (modes or []) if m in MODES]
    if not suites:
        raise gr.Error("Choose at least one suite.")
    if not modes:
        raise gr.Error("Choose at least one mode.")
    try:
        limit = max(1, int(limit))
    except (TypeError, ValueError, OverflowError):
        raise gr.Error("Items per suite must be a whole number.") from None
    cap = config.max_eval_items()
    if limit > cap:
        gr.Warning(f"Items per suite capped at {cap} (TOOLFORMER_MAX_EVAL_ITEMS); use the `eval` command for more.")
        limit = cap
    sweep_k, sweep_t = _numbers(ks, int, "k sweep"), _numbers(thresholds, float, "Thresholds")
    limit = _sweep_budget(limit, suites, sweep_k, sweep_t, cap)  # before any model is loaded
    name = (model_name or config.default_model()).strip()
    progress(0.0, desc=f"loading {name}")
    try:
        runtime.get_model(name)  # loads once (shared with the other tabs), with the status line
    except ModelLoadError as exc:
        raise gr.Error(f"Model: {render.one_line(exc)}") from None

    state: dict = {"task": "", "done": 0, "total": 0, "beat": time.monotonic()}
    stop = threading.Event()

    def report(task: str, done: int, total: int) -> None:
        if stop.is_set() or time.monotonic() - state["beat"] > HEARTBEAT_S:
            raise runner.EvaluationCancelled("stopped")
        state.update(task=task, done=done, total=total)

    out = config.data_dir() / "evals" / time.strftime("%Y%m%d-%H%M%S")
    cfg = runner.EvalConfig(suites=tuple(suites), modes=tuple(modes), limit=limit, top_k_call=int(top_k),
                            ks=sweep_k, thresholds=sweep_t)
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["results"] = runner.evaluate(name, config=cfg, out_dir=out, progress=report)
        except BaseException as exc:  # handed to the generator, which turns it into one line
            outcome["error"] = exc
        finally:
            runtime.release_memory()  # the batched decoder's buffers, freed, back to the OS

    worker = threading.Thread(target=work, name="toolformer-eval", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(timeout=1.0)
            state["beat"] = time.monotonic()
            if worker.is_alive():
                total = state["total"]
                progress((state["done"], total) if total else 0.0, desc=state["task"] or "evaluating")
                yield gr.skip(), gr.skip()  # where Stop takes effect
    finally:
        stop.set()  # closed by Stop: the worker ends after its current item
    exc = outcome.get("error")
    if isinstance(exc, runner.EvaluationCancelled):
        raise gr.Error("Evaluation stopped.")
    if isinstance(exc, (SuiteError, ModelLoadError, ValueError)):
        raise gr.Error(render.one_line(exc))
    if exc is not None:
        raise exc
    results = outcome["results"]
    if config.public():  # anyone may call /evaluate: its folders must not grow without bound
        from toolformer_app.files import prune_dirs

        prune_dirs(config.data_dir() / "evals", "", MAX_PUBLIC_EVALS)
    table = runner.format_table(results)
    secs = results.get("timing_s", {}).get("total")
    note = f"\n\n{secs:.0f} s · saved in `{Path(out).relative_to(config.data_dir())}/`" if secs is not None else ""
    yield table + note, str(out / "results.json")


def sweep_plots(results_path: str | None):
    """(k plot, threshold plot): accuracy and call rate per k and per threshold (the Table 9 analogue)."""
    import json

    import pandas as pd

    from toolformer_app.evaluation.runner import sweep_rows

    columns = ["value", "percent", "series"]
    rows: list[dict] = []
    if results_path and Path(results_path).is_file():
        try:
            rows = sweep_rows(json.loads(Path(results_path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            rows = []
    frames = []
    for sweep in ("k", "threshold"):
        mine = [{"value": r["value"], "percent": r["percent"], "series": f"{r['suite']} {r['metric']}"}
                for r in rows if r["sweep"] == sweep]
        frames.append(gr.update(value=pd.DataFrame(mine, columns=columns), visible=bool(mine)))
    return frames[0], frames[1]


def build(shared) -> None:
    from toolformer_app.decoding import InferenceConfig  # the paper's k = 10 is its default

    gr.Markdown("Accuracy on the offline suites in three modes: the **base** model, the model **with tools** "
                "(a call starts when \" [\" is in the top k) and **disabled** (p(\" [\") = 0), plus held-out "
                "perplexity. A few items per suite take a minute on a CPU.")
    with gr.Row():
        model = gr.Dropdown(shared.model_choices(include_checkpoints=True), value=config.default_chat_model(),
                            allow_custom_value=True, label="Model", scale=3, elem_id="eval-model")
        limit = gr.Number(5, label="Items per suite", precision=0, minimum=1, maximum=config.max_eval_items(),
                          scale=1, elem_id="eval-limit")
        top_k = gr.Slider(0, 50, value=InferenceConfig.top_k_call, step=1, label="k (tools mode)", scale=2)
    with gr.Row():
        suites = gr.CheckboxGroup(list(SUITES), value=["math", "dates"], label="Suites", elem_id="eval-suites")
        modes = gr.CheckboxGroup(list(MODES), value=list(MODES), label="Modes", elem_id="eval-modes")
    with gr.Row():
        ks = gr.Textbox("", label="Table 9: sweep k (e.g. 0,1,3,10)", elem_id="eval-ks")
        thresholds = gr.Textbox("", label="…and/or a call threshold on p(\" [\") (e.g. 0.005,0.02,0.05)",
                                elem_id="eval-thresholds")
    with gr.Row():
        go = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
        stop = gr.Button("Stop", variant="stop")
    table = gr.Markdown(elem_id="eval-table")
    results = gr.File(label="results.json", interactive=False)
    with gr.Row():
        plot_k = gr.LinePlot(x="value", y="percent", color="series", title="Accuracy and calls (%) per k",
                             x_title="k", visible=False, elem_id="eval-plot-k")
        plot_t = gr.LinePlot(x="value", y="percent", color="series", x_title="threshold on p(\" [\")",
                             title="Accuracy and calls (%) per call threshold", visible=False,
                             elem_id="eval-plot-threshold")
    event = go.click(run_evaluation, [model, suites, modes, limit, top_k, ks, thresholds], [table, results],
                     api_name="evaluate", concurrency_id=runtime.MODEL_CONCURRENCY, concurrency_limit=1)
    event.then(sweep_plots, results, [plot_k, plot_t], api_visibility="private")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
