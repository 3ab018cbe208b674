"""Evaluate tab: the zero-shot suites (paper, section 4) in three modes, and their table.

Library calls: ``evaluation.runner.evaluate`` (with a progress callback and an output dir in the
data dir) and ``evaluation.runner.format_table`` (Markdown). Nothing is computed here.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from toolformer_app import config
from toolformer_app.ui import render, runtime

SUITES = ("math", "facts", "dates", "perplexity", "plain")
MODES = ("base", "tools", "disabled")


@runtime.gpu_bound
def run_evaluation(model_name: str, suites: list[str] | None, modes: list[str] | None, limit: float,
                   top_k: float, progress=gr.Progress()):
    """(Markdown table, results.json path) for the model on the chosen suites."""
    from toolformer_app.evaluation import runner
    from toolformer_app.evaluation.suites import SuiteError
    from toolformer_app.models import ModelLoadError

    suites = [s for s in (suites or []) if s in SUITES]
    modes = [m for m in (modes or []) if m in MODES]
    if not suites:
        raise gr.Error("Choose at least one suite.")
    if not modes:
        raise gr.Error("Choose at least one mode.")
    name = (model_name or config.default_model()).strip()
    progress(0.0, desc=f"loading {name}")
    try:
        runtime.get_model(name)  # loads once (shared with the other tabs), with the status line
    except ModelLoadError as exc:
        raise gr.Error(f"Model: {render.one_line(exc)}") from None

    def report(task: str, done: int, total: int) -> None:
        progress((done, total), desc=task)

    out = config.data_dir() / "evals" / time.strftime("%Y%m%d-%H%M%S")
    cfg = runner.EvalConfig(suites=tuple(suites), modes=tuple(modes), limit=max(1, int(limit)),
                            top_k_call=int(top_k))
    try:
        results = runner.evaluate(name, config=cfg, out_dir=out, progress=report)
    except (SuiteError, ModelLoadError, ValueError) as exc:
        raise gr.Error(render.one_line(exc)) from None
    table = runner.format_table(results)
    secs = results.get("timing_s", {}).get("total")
    note = f"\n\n{secs:.0f} s · saved in `{Path(out).relative_to(config.data_dir())}/`" if secs is not None else ""
    return table + note, str(out / "results.json")


def build(shared) -> None:
    gr.Markdown("Accuracy on the offline suites in three modes: the **base** model, the model **with tools** "
                "(a call starts when \" [\" is in the top k) and **disabled** (p(\" [\") = 0), plus held-out "
                "perplexity. A few items per suite take a minute on a CPU.")
    with gr.Row():
        model = gr.Dropdown(shared.model_choices(include_checkpoints=True), value=config.default_chat_model(),
                            allow_custom_value=True, label="Model", scale=3, elem_id="eval-model")
        limit = gr.Number(5, label="Items per suite", precision=0, minimum=1, scale=1, elem_id="eval-limit")
        top_k = gr.Slider(0, 50, value=10, step=1, label="k (tools mode)", scale=2)
    with gr.Row():
        suites = gr.CheckboxGroup(list(SUITES), value=["math", "dates"], label="Suites", elem_id="eval-suites")
        modes = gr.CheckboxGroup(list(MODES), value=list(MODES), label="Modes", elem_id="eval-modes")
    with gr.Row():
        go = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
        stop = gr.Button("Stop", variant="stop")
    table = gr.Markdown(elem_id="eval-table")
    results = gr.File(label="results.json", interactive=False)
    event = go.click(run_evaluation, [model, suites, modes, limit, top_k], [table, results], api_name="evaluate",
                     concurrency_id=runtime.MODEL_CONCURRENCY, concurrency_limit=1)
    stop.click(None, None, None, cancels=[event], api_visibility="private")
