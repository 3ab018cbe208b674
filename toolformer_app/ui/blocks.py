"""The whole app: one ``gr.Blocks`` with a tab per module, wired together through plain session state."""

from __future__ import annotations

from typing import Any

import gradio as gr

from toolformer_app.ui import annotate, chat, finetune, render, runtime, user_tools
from toolformer_app.ui import filter as loss_filter

TITLE = "Toolformer Studio"
INTRO = (
    "A reproduction of *Toolformer: Language Models Can Teach Themselves to Use Tools* (Schick et al., 2023). "
    "**Annotate** samples API calls where the model wants them, **Loss reductions** keeps the calls that lower "
    "the loss on the next tokens (L⁻ − L⁺ ≥ τf), **Finetune** trains on the kept calls (C*), and **Chat** shows "
    "the model calling tools while it writes."
)


class Shared:
    """Components and events that several tabs use (filled in while the tabs are built)."""

    def __init__(self) -> None:
        self.run: gr.State | None = None  # the session's current run: plain dicts only
        self.tau_f: gr.Slider | None = None
        self.annotate_event: Any = None
        self.filter_pick: gr.Dropdown | None = None
        self.filter_outputs: list[Any] = []  # what the Filter tab redraws for a run
        self.finetune_settings: list[Any] = []  # the inputs of the step-time estimate
        self.finetune_device: gr.Markdown | None = None
        self.finetune_jobs: list[Any] = []  # the job picker, its known ids and the jobs table
        self.chat_model: gr.Dropdown | None = None
        self.finetune_dataset: gr.Dropdown | None = None

    @staticmethod
    def model_choices(include_checkpoints: bool = True) -> list[tuple[str, str]]:
        return runtime.offered_models(chat.model_choices(include_checkpoints))


def evaluation_available() -> bool:
    """The Evaluate tab is shown only when the evaluation library loads and offers its entry points."""
    try:
        from toolformer_app.evaluation import runner
    except ImportError:  # an install without the evaluation's dependencies
        return False
    return callable(getattr(runner, "evaluate", None)) and callable(getattr(runner, "format_table", None))


def build_demo() -> gr.Blocks:
    """Build the Blocks (no launch): app.py and the tests launch it with ``launch_kwargs()``."""
    from toolformer_app import training

    runtime.limit_malloc_arenas()  # before the server's worker threads start allocating

    try:
        training.mark_interrupted()  # jobs whose process died while the app was down
    except Exception:
        pass
    user_tools.load()  # <data dir>/tools/*.py only: loading runs the file's code
    shared = Shared()
    # Gradio keeps every file posted to /gradio_api/upload (anyone's, on a public Space) and every file an
    # output serves in its cache: hourly, files older than a day are deleted (and all at shutdown).
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        shared.run = gr.State(annotate.empty_run())
        with gr.Row(elem_id="tf-header"):
            gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="tf-intro")
        model_status = gr.Markdown(runtime.status_line, elem_id="tf-model-status")  # evaluated per page load
        status_timer = gr.Timer(3.0)  # cheap: sends nothing while the line is unchanged
        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate", elem_id="tab-annotate"):
                annotate.build(shared)
            with gr.Tab("Loss reductions & filter", id="filter", elem_id="tab-filter") as filter_tab:
                loss_filter.build(shared)
            with gr.Tab("Finetune", id="finetune", elem_id="tab-finetune") as finetune_tab:
                finetune.build(shared)
            with gr.Tab("Chat", id="chat", elem_id="tab-chat") as chat_tab:
                chat.build(shared)
            if evaluation_available():
                from toolformer_app.ui import evaluate

                with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                    evaluate.build(shared)

        loss_filter.connect(shared, filter_tab)
        finetune.connect(shared, finetune_tab, demo)
        chat_tab.select(chat.refresh_models, shared.chat_model, shared.chat_model, api_visibility="private",
                        show_progress="hidden")

        def status_tick(current: str):
            line = runtime.status_line()
            return gr.skip() if line == current else line

        status_timer.tick(status_tick, model_status, model_status, api_visibility="private", show_progress="hidden")
    return demo


CACHE_CLEANUP = (3600, 86400)  # (every s, older than s): Gradio's upload and output cache


def launch_kwargs() -> dict[str, Any]:
    """What ``launch()`` needs besides the address: theme and CSS (Gradio 6 takes them here), no sharing,
    the upload size limit and the upload cache's quota."""
    from starlette.middleware import Middleware

    from toolformer_app import config
    from toolformer_app.ui.upload_quota import UploadQuota

    theme = gr.themes.Soft(primary_hue="indigo", secondary_hue="amber")
    return {"theme": theme, "css": render.app_css(), "share": False, "show_error": True,
            "max_file_size": config.max_upload_bytes(),
            "app_kwargs": {"middleware": [Middleware(UploadQuota)]}}  # the upload cache's quota (public)
