"""Finetune tab: launch a finetune on C* as a background job and watch it (paper, 2: step 4 / App. B).

Library calls: ``training.FinetuneConfig`` + ``training.start_job`` (a separate process; one at a
time, JobConflictError otherwise), ``list_jobs`` / ``get_job`` / ``read_events`` / ``log_tail`` /
``cancel_job`` / ``resume_job`` from the SQLite job store, ``training.data.load_texts`` to check an
upload, ``training.estimate`` for the measured CPU step time, ``training.storage`` for datasets in the data dir, ``pipeline.cstar.write_cstar``
(through the Filter tab's export) for the current run's C* mixed with its call-free texts. A
``gr.Timer`` polls.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import gradio as gr

from toolformer_app import config
from toolformer_app.training import estimate, storage
from toolformer_app.ui import render, runtime

CURRENT = "__current__"  # the dataset choice "C* of the current run at the Filter tab's τf"


def default_plain_ratio() -> float:
    """The recipe's call-free texts per text with calls: the app trains on the mix the recipe trains on."""
    from toolformer_app.recipe import RecipeConfig

    return RecipeConfig.plain_ratio
EXAMPLE_DATASET = render.ASSETS / "examples" / "calculator_dataset.jsonl"
POLL_S = 1.0



# -- guard ----------------------------------------------------------------------------------------

def guard_note() -> str:
    if config.admin_token():
        return "**Guarded:** launching, cancelling and resuming need the admin token (TOOLFORMER_ADMIN_TOKEN)."
    if os.environ.get("SPACE_ID"):
        return ("Finetuning is **disabled** on this Space. To enable it, set the secret "
                "`TOOLFORMER_ADMIN_TOKEN` in the Space's settings and enter it here.")
    return ("Finetuning is open to anyone who can reach this page. On a public machine, set "
            "`TOOLFORMER_ADMIN_TOKEN` to require a token.")


def check_token(token: str | None) -> None:
    required = config.admin_token()
    if required:
        if not token or not secrets.compare_digest(token.strip().encode(), required.encode()):
            raise gr.Error("Wrong or missing admin token: enter the value of TOOLFORMER_ADMIN_TOKEN.")
    elif os.environ.get("SPACE_ID"):
        raise gr.Error("Finetuning is disabled on this Space: set the TOOLFORMER_ADMIN_TOKEN secret to enable it.")


# -- the device line --------------------------------------------------------------------------------

@runtime.gpu_bound
def device_line(model_name: str | None, batch_size: float, max_length: float, grad_accum: float,
                lora: bool) -> str:
    """"GPU: NVIDIA …" or "CPU: this will be slow (about N s per step)", with N measured once."""
    from toolformer_app.models import ModelLoadError, pick_device

    if pick_device() == "cuda":
        import torch

        return f"**GPU: {torch.cuda.get_device_name(0)}**"
    name = (model_name or config.default_model()).strip()
    try:
        probe = estimate.measure_cpu_step(name)
    except (ModelLoadError, OSError, ValueError) as exc:
        return f"**CPU: this will be slow** (could not measure a step on `{name}`: {render.one_line(exc)})"
    return _cpu_line(probe, batch_size, max_length, grad_accum, lora)


def _cpu_line(probe: float, batch_size: float, max_length: float, grad_accum: float, lora: bool) -> str:
    est = estimate.step_estimate(probe, batch_size, max_length, grad_accum, lora)
    return (f"**CPU: this will be slow (about {est:.0f} s per step)** at batch {int(batch_size)} × "
            f"{int(max_length)} tokens{f' × {int(grad_accum)} accumulation' if int(grad_accum) > 1 else ''}, "
            f"measured on this machine ({probe:.2f} s for one forward + backward of {estimate.PROBE_TOKENS} tokens).")


def device_line_cached(model_name: str | None, batch_size: float, max_length: float, grad_accum: float,
                       lora: bool) -> str:
    """Re-estimate when the settings change, only if the probe already ran (no model pass here)."""
    probe = estimate.measured_probe((model_name or config.default_model()).strip())
    if probe is None:
        return gr.skip()
    return _cpu_line(probe, batch_size, max_length, grad_accum, lora)


# -- datasets ---------------------------------------------------------------------------------------

EXAMPLE_ID = "example/calculator_dataset.jsonl"  # the shipped example's choice value (no server path)
MAX_PUBLIC_UPLOADS = 10  # on a public deployment the newest uploads are kept, older ones removed


def dataset_choices() -> list[tuple[str, str]]:
    """The current run, the shipped example, and every dataset.jsonl in the data dir (newest first).

    Values are ids, never server paths (they show in the API's Literal): a path relative to the data
    dir, or EXAMPLE_ID. On a public deployment the Filter tab's exports (``export-*``: C* of another
    session's texts) are not listed; a session reaches its own through CURRENT.
    """
    root = config.data_dir()
    found = storage.list_datasets(root, config.public())
    out = [("C* of the current run at the Filter tab's τf (mixed with its call-free texts, below)", CURRENT)]
    out += [(f"data dir: {p.relative_to(root).as_posix()}", p.relative_to(root).as_posix()) for p in found]
    if EXAMPLE_DATASET.exists():
        out.append(("example: 12 Calculator texts (assets/examples/calculator_dataset.jsonl)", EXAMPLE_ID))
    return out


def upload_dataset(path: str | None, token: str | None = None):
    """Check an uploaded dataset (malformed lines reported by number) and keep a copy in the data dir.

    Storing it needs what launching needs (``check_token``): an upload only feeds finetunes, and an
    anonymous visitor of a public deployment must not fill the disk. On one, only the newest
    MAX_PUBLIC_UPLOADS uploads are kept.
    """
    from toolformer_app.training import TrainingInputError
    from toolformer_app.training.data import load_texts

    if not path:
        return gr.skip()
    from toolformer_app.files import read_text_file

    check_token(token)
    name = Path(path).name
    try:
        if Path(path).suffix.lower() != ".jsonl":
            raise ValueError(f"{name} is not a .jsonl file")
        content = read_text_file(path, config.max_upload_bytes())  # every byte: binary and non-UTF-8 are refused
    except (ValueError, OSError) as exc:
        raise gr.Error(f"{render.one_line(exc)}: upload a .jsonl with a \"text\" field per line") from None
    try:
        data = load_texts(path)
    except TrainingInputError as exc:
        raise gr.Error(render.one_line(exc).replace(str(Path(path).resolve()), name).replace(str(path), name)) from None
    for note in data.warnings():
        gr.Warning(f"{name}: {note}")
    root = config.data_dir()
    try:
        stored = storage.store_upload(root, content, MAX_PUBLIC_UPLOADS if config.public() else None)
    except OSError as exc:
        raise gr.Error(render.write_error(exc)) from None
    gr.Info(f"{name}: {len(data.texts)} texts, {data.texts_with_calls} with calls")
    return gr.update(choices=dataset_choices(), value=stored.relative_to(root).as_posix())


def resolve_dataset(choice: str | None, run: dict[str, Any] | None, tau_f: float, mix: bool = True,
                    plain_ratio: float | None = None) -> str:
    """The file for a dataset choice: CURRENT (exported now: C* at τf, with ``plain_ratio`` of the run's
    call-free texts per text with calls when ``mix``, by default the recipe's ratio), EXAMPLE_ID, or a
    path relative to the data dir (absolute paths only off a public deployment); the message never names
    a server path."""
    if not choice:
        raise gr.Error("Choose a dataset.")
    if choice == CURRENT:
        from toolformer_app.ui.filter import export_dataset

        ratio = default_plain_ratio() if plain_ratio is None else float(plain_ratio)
        if mix and ratio < 0:
            raise gr.Error(f"Call-free texts per text with calls must be 0 or more, not {ratio:g}.")
        return export_dataset(run, tau_f, ratio if mix else 0.0)
    if choice == EXAMPLE_ID:
        return str(EXAMPLE_DATASET)
    root = config.data_dir().resolve()
    given = Path(choice).expanduser()
    if given.is_absolute() and not config.public():
        path = given
    else:
        path = (root / given).resolve()
        if given.is_absolute() or not path.is_relative_to(root) or path.name != "dataset.jsonl":
            raise gr.Error("Choose a dataset from the list (or upload one).")
    if not path.is_file():
        raise gr.Error(f"{choice[:200]} no longer exists: refresh the list")
    return str(path)


# -- jobs -------------------------------------------------------------------------------------------

def make_config(model: str, data: str, lora: bool, learning_rate: float | None, batch_size: float,
                grad_accum: float, epochs: float, max_steps: float, max_length: float, eval_every: float,
                eval_fraction: float):
    from toolformer_app.training import FinetuneConfig

    eval_every = max(1, int(eval_every))
    return FinetuneConfig(
        data=data, model=(model or config.default_model()).strip(), lora=bool(lora),
        learning_rate=float(learning_rate) if learning_rate else None, batch_size=int(batch_size),
        grad_accum=int(grad_accum), epochs=float(epochs), max_steps=int(max_steps) if max_steps else None,
        max_length=int(max_length), eval_every=eval_every, save_every=eval_every,
        eval_fraction=float(eval_fraction),
    )


def launch(token: str, model: str, dataset: str, run: dict[str, Any] | None, tau_f: float, lora: bool,
           learning_rate: float | None, batch_size: float, grad_accum: float, epochs: float, max_steps: float,
           max_length: float, eval_every: float, eval_fraction: float, mix: bool = True,
           plain_ratio: float | None = None):
    """Start a job; returns (job dropdown update, message). ``mix`` / ``plain_ratio``: see resolve_dataset."""
    from toolformer_app import training
    from toolformer_app.models import ModelLoadError, check_allowed

    check_token(token)
    try:
        training.check_no_active_job()  # before the export below writes a dataset
        check_allowed(model)
    except training.JobConflictError as exc:
        raise gr.Error(f"Only one finetune runs at a time: {render.one_line(exc)}") from None
    except training.JobError as exc:
        raise gr.Error(job_error(exc)) from None
    except ModelLoadError as exc:
        raise gr.Error(f"Model: {render.one_line(exc)}") from None
    data = resolve_dataset(dataset, run, tau_f, mix, plain_ratio)
    cfg = make_config(model, data, lora, learning_rate, batch_size, grad_accum, epochs, max_steps, max_length,
                      eval_every, eval_fraction)
    try:
        job_id = training.start_job(cfg)
    except training.JobConflictError as exc:
        raise gr.Error(f"Only one finetune runs at a time: {render.one_line(exc)}") from None
    except (training.TrainingInputError, training.JobError, ValueError) as exc:
        raise gr.Error(job_error(exc)) from None
    except OSError as exc:
        raise gr.Error(render.write_error(exc)) from None
    return gr.update(choices=job_choices(), value=job_id), f"Started **{job_id}** on `{Path(data).name}`."


def cancel(token: str, job_id: str | None) -> str:
    from toolformer_app import training

    check_token(token)
    if not job_id:
        raise gr.Error("Choose a job first.")
    try:
        training.cancel_job(job_id, wait=False)
    except training.JobError as exc:
        raise gr.Error(job_error(exc)) from None
    return f"Cancelling **{job_id}**: it saves a checkpoint at the end of this step, then stops."


def resume(token: str, job_id: str | None) -> str:
    from toolformer_app import training

    check_token(token)
    if not job_id:
        raise gr.Error("Choose a job first.")
    try:
        training.resume_job(job_id)
    except training.JobConflictError as exc:
        raise gr.Error(f"Only one finetune runs at a time: {render.one_line(exc)}") from None
    except training.JobError as exc:
        raise gr.Error(job_error(exc)) from None
    except OSError as exc:
        raise gr.Error(render.write_error(exc)) from None
    return f"Resuming **{job_id}** from its last checkpoint."


def job_error(exc: Exception) -> str:
    """One line for a job failure, with no server path (a damaged store gets its own notice)."""
    from toolformer_app.training import JobStoreError

    if isinstance(exc, JobStoreError):
        return exc.public
    return render.hide_paths(render.one_line(exc))


def _jobs(limit: int = 50) -> list:
    """The newest jobs; none when the store cannot be read (store_problem says why)."""
    from toolformer_app import training

    try:
        return training.list_jobs(limit=limit)
    except training.JobStoreError:
        return []


def store_problem() -> str | None:
    """The public notice when the job store cannot be read, else None (the app runs on without jobs)."""
    from toolformer_app import training

    try:
        training.list_jobs(limit=1)
    except training.JobStoreError as exc:
        return exc.public
    return None


def job_choices() -> list[tuple[str, str]]:
    return [(f"{j.id} · {j.status}", j.id) for j in _jobs()]


def _saved_as(job) -> str:
    """Where a finished job's model is, without the server path: its place in the data dir."""
    from toolformer_app.models import finetune_dir

    if finetune_dir(job.id) is not None:
        return f"finetuned/{job.id}"
    return Path(job.out_dir or "").name  # written elsewhere (CLI --out): its folder name only


def jobs_frame():
    import pandas as pd

    rows = []
    for j in _jobs():
        total = (j.metrics or {}).get("total_steps") or j.config.get("max_steps")
        note = render.hide_paths(j.error or "") or (_saved_as(j) if j.status == "succeeded" else "")
        rows.append({"job": j.id, "status": j.status, "model": render.hide_paths(j.config.get("model", "")),
                     "data": Path(j.config.get("data", "")).parent.name + "/" + Path(j.config.get("data", "")).name,
                     "step": f"{j.last_step or 0}" + (f"/{total}" if total else ""),
                     "started": time.strftime("%m-%d %H:%M:%S", time.localtime(j.created)),
                     "result or error": note or ""})
    return pd.DataFrame(rows, columns=["job", "status", "model", "data", "step", "started", "result or error"])


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else (f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s")


def loss_frame(events: list[dict[str, Any]]):
    """LinePlot data: the training loss at every logged step."""
    import pandas as pd

    rows = [{"step": e["step"], "loss": e["loss"]} for e in events
            if e.get("type") == "progress" and e.get("loss") is not None]
    return pd.DataFrame(rows, columns=["step", "loss"]).astype({"step": "int64", "loss": "float64"})


def perplexity_frame(events: list[dict[str, Any]]):
    """LinePlot data: held-out perplexity at each evaluation (step 0 is the base model)."""
    import pandas as pd

    rows = [{"step": e["step"], "perplexity": e["perplexity"], "eval loss": e.get("eval_loss")} for e in events
            if e.get("type") == "eval" and e.get("perplexity") is not None]
    frame = pd.DataFrame(rows, columns=["step", "perplexity", "eval loss"])
    return frame.astype({"step": "int64", "perplexity": "float64", "eval loss": "float64"})


def progress_html(fraction: float, label: str, status: str) -> str:
    pct = max(0.0, min(1.0, fraction)) * 100
    return (f'<div class="tf-progress" data-status="{status}"><div class="tf-progress-bar tf-{status}" '
            f'style="width:{pct:.1f}%"></div></div><div class="tf-progress-label">{label}</div>')


def job_view(job_id: str | None):
    """(status markdown, progress bar HTML, loss curve, perplexity points, log tail) of one job."""
    from toolformer_app import training

    if not job_id:
        return (store_problem() or "No job yet.", progress_html(0, "", "none"), loss_frame([]), perplexity_frame([]),
                "")
    try:
        job = training.get_job(job_id)
        events = training.read_events(job_id)
        log = render.hide_paths(training.log_tail(job_id, 40))  # library warnings name site-packages files
    except training.JobError as exc:
        return (f"Error: {job_error(exc)}", progress_html(0, "", "none"), loss_frame([]), perplexity_frame([]), "")
    start = next((e for e in reversed(events) if e.get("type") == "start"), {})
    prog = next((e for e in reversed(events) if e.get("type") == "progress"), {})
    total = prog.get("total_steps") or start.get("total_steps") or (job.metrics or {}).get("total_steps")
    step = prog.get("step") or start.get("step") or 0
    if job.status == "succeeded":
        step = (job.metrics or {}).get("steps", total or step)
    frac = step / total if total else 0.0
    if job.status == "succeeded":
        frac = 1.0
    evals = [e for e in events if e.get("type") == "eval" and e.get("perplexity") is not None]
    label = f"step {step}/{total or '?'}"
    if job.active and prog.get("eta_s") is not None:
        label += f" · ETA {_fmt_s(prog['eta_s'])}"
    if prog.get("loss") is not None:
        label += f" · loss {prog['loss']:.3f}"
    if prog.get("tokens_per_s"):
        label += f" · {prog['tokens_per_s']:.0f} tokens/s"
    status_msg = render.hide_paths(next((e["message"] for e in reversed(events) if e.get("type") == "status"), ""))
    lines = [f"**{job.id}** · **{job.status}** · `{render.hide_paths(job.config.get('model', ''))}` on "
             f"`{Path(job.config.get('data', '')).name}`" + (" · LoRA" if job.config.get("lora") else "")]
    if evals:
        first, last = evals[0], evals[-1]
        ppl = f"held-out perplexity {first['perplexity']:.1f} (step {first['step']})"
        if len(evals) > 1:
            ppl += f" → {last['perplexity']:.1f} (step {last['step']})"
        lines.append(ppl)
    if job.status == "succeeded":
        lines.append(f"Done: the model is saved as `{_saved_as(job)}` in the data dir; choose it in the **Chat** tab.")
    elif job.error:
        lines.append(f"Error: {render.hide_paths(render.one_line(job.error))}")
    elif job.active and status_msg:
        lines.append(status_msg)
    if job.status in ("cancelled", "interrupted", "failed") and job.last_checkpoint:
        lines.append(f"Resumable from `{Path(job.last_checkpoint).name}`.")
    return ("  \n".join(lines), progress_html(frac, label, job.status), loss_frame(events), perplexity_frame(events),
            log)


def poll(job_id: str | None, known: list[str] | None):
    """The timer tick: the selected job's view, the jobs table, and the job list when it changed."""
    status, bar, curve, ppl, log = job_view(job_id)
    choices = job_choices()
    labels = [label for label, _ in choices]
    ids = [v for _, v in choices]
    update: Any = gr.skip()
    if labels != (known or []):  # a job was added or changed status: refresh the list, keep the selection
        update = gr.update(choices=choices, value=job_id if job_id in ids else (ids[0] if ids else None))
    return status, bar, curve, ppl, log, jobs_frame(), update, labels


def on_load():
    """Page load: the newest job is selected, so a reload shows the job that was running."""
    choices = job_choices()
    return (gr.update(choices=choices, value=choices[0][1] if choices else None), [c[0] for c in choices],
            jobs_frame())


def build(shared) -> gr.Tab | None:
    from toolformer_app.training import FinetuneConfig

    d = FinetuneConfig()
    problem = store_problem()
    gr.Markdown(guard_note() + (f"\n\n**{problem}**" if problem else ""), elem_id="finetune-guard")
    device = gr.Markdown("Device: measured when this tab is first opened…", elem_id="finetune-device")
    with gr.Row():
        with gr.Column():
            model = gr.Dropdown(shared.model_choices(include_checkpoints=True), value=config.default_model(),
                                allow_custom_value=True, label="Base model", elem_id="finetune-model")
            with gr.Row():
                dataset = gr.Dropdown(dataset_choices(), value=CURRENT, label="Dataset (C*)", scale=4,
                                      elem_id="finetune-dataset")
                refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
            with gr.Row():  # only for the current run: the other datasets are used as they are
                mix = gr.Checkbox(True, label="Mix in the run's call-free texts (as the recipe does)", scale=3,
                                  elem_id="finetune-mix")
                ratio = gr.Number(default_plain_ratio(), label="Call-free texts per text with calls", minimum=0,
                                  scale=2, elem_id="finetune-ratio")
            upload = gr.File(label="Or upload a dataset.jsonl", file_types=[".jsonl"], type="filepath", height=120)
            token = gr.Textbox(label="Admin token", type="password", visible=bool(config.admin_token()),
                               elem_id="finetune-token")
        with gr.Column():
            with gr.Row():
                lora = gr.Checkbox(d.lora, label="LoRA (train an adapter, not every weight)", elem_id="finetune-lora")
                lr = gr.Number(0, label="Learning rate (0: 5e-5 full, 2e-4 LoRA)", minimum=0)
            with gr.Row():
                batch = gr.Number(d.batch_size, label="Batch size", precision=0, minimum=1, elem_id="finetune-batch")
                accum = gr.Number(d.grad_accum, label="Grad. accumulation", precision=0, minimum=1)
                max_len = gr.Number(d.max_length, label="Max length (tokens)", precision=0, minimum=16,
                                    elem_id="finetune-maxlen")
            with gr.Row():
                epochs = gr.Number(d.epochs, label="Epochs", minimum=0)
                steps = gr.Number(0, label="Max steps (0: by epochs)", precision=0, minimum=0,
                                  elem_id="finetune-steps")
                eval_every = gr.Number(d.eval_every, label="Evaluate/save every", precision=0, minimum=1,
                                       elem_id="finetune-eval-every")
                eval_frac = gr.Number(d.eval_fraction, label="Held-out fraction", minimum=0, maximum=0.5)
    with gr.Row():
        go = gr.Button("Launch finetune", variant="primary", elem_id="finetune-launch")
        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="finetune-cancel")
        resume_btn = gr.Button("Resume", elem_id="finetune-resume")
    message = gr.Markdown(elem_id="finetune-message")
    with gr.Row():
        # any existing id is accepted (an API session has no page-load choices); the handlers check it
        job = gr.Dropdown([], label="Job", scale=3, allow_custom_value=True, elem_id="finetune-job")
    known = gr.State([])
    status = gr.Markdown(elem_id="finetune-status")
    bar = gr.HTML(progress_html(0, "", "none"), elem_id="finetune-progress")
    with gr.Row():
        curve = gr.LinePlot(loss_frame([]), x="step", y="loss", label="Training loss", tooltip="all", height=240,
                            elem_id="finetune-curve")
        ppl = gr.LinePlot(perplexity_frame([]), x="step", y="perplexity", label="Held-out perplexity (each evaluation)",
                          tooltip="all", height=240, elem_id="finetune-ppl")
    log = gr.Textbox(label="Log tail", lines=8, max_lines=8, autoscroll=True, elem_id="finetune-log",
                     interactive=False)
    jobs = gr.DataFrame(jobs_frame(), label="Jobs (kept in the data dir's job store)", interactive=False,
                        elem_id="finetune-jobs")
    timer = gr.Timer(POLL_S)

    shared.finetune_dataset = dataset
    settings = [model, batch, max_len, accum, lora]
    shared.finetune_settings, shared.finetune_device = settings, device
    for comp in (batch, max_len, accum, lora):
        comp.change(device_line_cached, settings, device, api_visibility="private", show_progress="hidden")
    refresh.click(lambda: gr.update(choices=dataset_choices()), None, dataset, api_visibility="private")
    upload.upload(upload_dataset, [upload, token], dataset, api_visibility="private")
    dataset.change(lambda choice: (gr.update(visible=choice == CURRENT),) * 2, dataset, [mix, ratio],
                   api_visibility="private", show_progress="hidden")
    go.click(launch, [token, model, dataset, shared.run, shared.tau_f, lora, lr, batch, accum, epochs, steps,
                      max_len, eval_every, eval_frac, mix, ratio], [job, message], api_name="finetune")
    cancel_btn.click(cancel, [token, job], message, api_name="cancel_finetune")
    resume_btn.click(resume, [token, job], message, api_name="resume_finetune")
    views = [status, bar, curve, ppl, log]
    job.change(job_view, job, views, api_visibility="private", show_progress="hidden")
    timer.tick(poll, [job, known], [*views, jobs, job, known], api_visibility="private", show_progress="hidden")
    shared.finetune_jobs = [job, known, jobs]


def connect(shared, tab: gr.Tab, demo: gr.Blocks) -> None:
    """Opening the tab measures the step time once and lists the datasets again; a page load shows the jobs."""
    tab.select(device_line, shared.finetune_settings, shared.finetune_device, api_visibility="private",
               concurrency_id=runtime.MODEL_CONCURRENCY, concurrency_limit=1)
    tab.select(lambda choice: gr.update(choices=dataset_choices(), value=choice),
               shared.finetune_dataset, shared.finetune_dataset, api_visibility="private", show_progress="hidden")
    demo.load(on_load, None, shared.finetune_jobs, api_visibility="private")
