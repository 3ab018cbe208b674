"""Finetune M on C* with the Hugging Face Trainer (so `accelerate launch` gives DDP/FSDP for free).

``run_finetune`` is what the job process runs: validate, load, check memory on one batch, train
with periodic held-out evaluation and resumable checkpoints, keep the best checkpoint by eval
loss, and write the final model directory atomically with its ``toolformer_card.json``.

This module is the loop; its parts live beside it: ``loading`` (the model, its precision, LoRA),
``checks`` (memory and packing before the run) and ``checkpoints``. Their names are importable from here too.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolformer_app import models
from toolformer_app.training import data as tdata
from toolformer_app.training.checkpoints import (
    CHECKPOINTS_DIR,
    LATEST_NAME,
    checkpoint_step,
    is_complete,
    latest_checkpoint,
    write_atomic,
)
from toolformer_app.training.checks import is_oom, memory_check, oom_advice, packing_is_exact
from toolformer_app.training.events import EventWriter, clean_float
from toolformer_app.training.loading import (
    amp_flags,
    apply_lora,
    base_model_reference,
    load_model_and_tokenizer,
    load_training_model,
    master_adamw_class,
    precision_label,
    resolve_model,
)
from toolformer_app.training.options import FinetuneConfig, TrainingInputError, validate_hyperparameters

# The job runner, the CLI, bench and users import these from here.
__all__ = [
    "CHECKPOINTS_DIR", "LATEST_NAME", "TRACKIO_PROJECT", "JobCancelled", "Prepared", "TrainingError",
    "amp_flags", "base_model_reference", "checkpoint_step", "latest_checkpoint", "load_training_model",
    "memory_check", "oom_advice", "packing_is_exact", "resolve_model", "run_finetune", "validate_inputs",
    "write_atomic",
]



class TrainingError(RuntimeError):
    """Training failed after it started (for example out of memory mid-run); one line."""


class JobCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The job was asked to stop (SIGTERM/SIGINT or cancel); the last checkpoint is kept."""

    def __init__(self, step: int = 0, checkpoint: str | None = None):
        super().__init__(f"cancelled at step {step}")
        self.step, self.checkpoint = step, checkpoint


@dataclass
class Prepared:
    """Validated inputs: what the job will train on, known before any model is loaded."""

    cfg: FinetuneConfig
    data: tdata.LoadedData
    train_texts: list[str]
    eval_texts: list[str]
    model_source: str


def validate_inputs(cfg: FinetuneConfig) -> Prepared:
    """Every check that needs no model weights: hyperparameters, the data file, the model name.

    Raises TrainingInputError (one line) on the first problem.
    """
    validate_hyperparameters(cfg)
    if cfg.precision == "fp16":
        import torch

        if not torch.cuda.is_available():
            raise TrainingInputError("fp16 needs a GPU; use --precision bf16 or fp32 on a CPU")
    loaded = tdata.load_texts(cfg.data)
    train, held = tdata.split_texts(loaded.texts, cfg)
    return Prepared(cfg, loaded, train, held, resolve_model(cfg.model))


# ---------------------------------------------------------------- callbacks


def _callbacks(events: EventWriter, job_dir: Path, stop: threading.Event, on_checkpoint):
    import torch
    from transformers import TrainerCallback

    class Events(TrainerCallback):
        """Turns Trainer logs into our progress/eval/checkpoint events, and honours a stop request."""

        def __init__(self):
            self.run_start = time.time()
            self.first_step = 0
            self.step_t0 = time.perf_counter()
            self.train_time = self.last_train_time = 0.0
            self.last_tokens = 0
            self.last_saved = -1
            self.last_loss = None
            self.stopping = False

        def on_train_begin(self, args, state, control, **kw):
            self.run_start = time.time()
            self.first_step = state.global_step
            self.last_tokens = state.num_input_tokens_seen

        def on_step_begin(self, args, state, control, **kw):
            self.step_t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            # Throughput counts time inside steps only, not evaluations or checkpoint writes.
            self.train_time += time.perf_counter() - self.step_t0
            requested = stop.is_set()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # Only rank 0 may have got the signal: every rank must stop at the same step.
                flag = torch.tensor([1.0 if requested else 0.0], device=args.device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                requested = bool(flag.item())
            if requested:
                self.stopping = True
                control.should_training_stop = True
                # Keep the work done: save this step unless it was just saved.
                control.should_save = state.global_step != self.last_saved
                control.should_evaluate = False
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now = time.time()
            tokens = state.num_input_tokens_seen
            dt = self.train_time - self.last_train_time
            tps = (tokens - self.last_tokens) / dt if tokens and dt > 0 else None
            self.last_train_time, self.last_tokens = self.train_time, tokens
            done = state.global_step - self.first_step
            per_step = (now - self.run_start) / done if done > 0 else None
            eta = per_step * (state.max_steps - state.global_step) if per_step is not None else None
            self.last_loss = clean_float(logs.get("loss"))
            events.emit(
                "progress", step=state.global_step, total_steps=state.max_steps, loss=self.last_loss,
                lr=clean_float(logs.get("learning_rate")), tokens_per_s=clean_float(tps),
                eta_s=clean_float(eta), epoch=clean_float(state.epoch),
                grad_norm=clean_float(logs.get("grad_norm")),
                tokens_seen=tokens, train_s=round(self.train_time, 4),
            )

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if not state.is_world_process_zero or not metrics or "eval_loss" not in metrics:
                return
            loss = clean_float(metrics["eval_loss"])
            events.emit("eval", step=state.global_step, eval_loss=loss,
                        perplexity=clean_float(math.exp(min(loss, 50))) if loss is not None else None)

        def on_save(self, args, state, control, **kw):
            self.last_saved = state.global_step
            if not state.is_world_process_zero:
                return
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not is_complete(path):
                return
            # Only now, after Trainer wrote every file of the checkpoint, is it marked latest.
            write_atomic(job_dir / LATEST_NAME, path.name + "\n")
            if on_checkpoint is not None:
                on_checkpoint(str(path), state.global_step)
            events.emit("checkpoint", step=state.global_step, path=str(path))

    return Events()


# ---------------------------------------------------------------- KL to the base


def _kl_trainer_class(kl_weight: float):
    """A Trainer whose training loss adds ``kl_weight`` x KL(base || model) on call-free tokens (``data.kl_to_base``).

    The base is the same PeftModel with its adapters off (no copy, no gradients). Evaluation (model.eval())
    returns the LM loss alone, so eval_loss and best-checkpoint selection mean what they mean without it.
    """
    import torch
    from transformers import Trainer

    class KLTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            free = inputs.pop(tdata.KL_MASK, None)
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if model.training and free is not None and kl_weight > 0:
                plain = {k: v for k, v in inputs.items() if k != "labels"}
                with torch.no_grad(), self.accelerator.unwrap_model(model).disable_adapter():
                    base_logits = model(**plain).logits
                loss = loss + kl_weight * tdata.kl_to_base(outputs.logits, base_logits, free)
            return (loss, outputs) if return_outputs else loss

    return KLTrainer



# ---------------------------------------------------------------- the run


def _card(cfg: FinetuneConfig, prep: Prepared, metrics: dict, job_id: str | None, kind: str, base_ref: str) -> dict:
    import torch
    import transformers

    return {
        "format": "toolformer-finetune/1",
        "kind": kind,  # "full" (weights) or "lora" (adapter; models.load merges it)
        "base_model": cfg.model,
        "base_model_source": base_ref,
        "job_id": job_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": prep.data.summary() | {"train_examples": len(prep.train_texts), "eval_examples": len(prep.eval_texts)},
        "objective": "causal LM on x*" + (", tool results masked" if cfg.mask_results else ""),
        "hyperparameters": cfg.to_dict() | {"learning_rate": cfg.effective_lr()},
        "metrics": metrics,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    } | ({"inference": {"clause_inputs": clause}} if (clause := [t.strip() for t in cfg.clause_inputs.split(",")
                                                                 if t.strip()]) else {})


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished tmp dir into place in one rename; an old dir is set aside first, never half-replaced."""
    old = None
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        elif overwrite:
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        else:
            raise TrainingError(f"output dir {out} appeared during training and is not empty; the model is in {tmp}")
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


TRACKIO_PROJECT = "toolformer-studio"


def _tracker_dirs(cfg: FinetuneConfig, job_dir: Path) -> None:
    """Keep tracker files in the data dir (the only place the app writes), unless the user chose a place.

    TensorBoard: <job dir>/tensorboard. trackio: <data dir>/trackio (its TRACKIO_DIR, read when trackio is imported).
    """
    if cfg.report_to == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(job_dir / "tensorboard")
    elif cfg.report_to == "trackio" and "TRACKIO_DIR" not in os.environ:
        from toolformer_app import config

        os.environ["TRACKIO_DIR"] = str(config.data_dir() / "trackio")



@dataclass
class _Loaded:
    """The model as it trains (LoRA applied), its tokenizer, the tokenized data, and how it computes."""

    model: Any
    tokenizer: Any
    train_examples: list[dict]
    eval_examples: list[dict]
    weight_dtype: Any
    amp: dict[str, bool]  # the Trainer's bf16/fp16 flags
    master: bool  # an fp32 master copy in the optimizer
    cuda: bool


def _load(cfg: FinetuneConfig, prep: Prepared, events: EventWriter) -> _Loaded:
    import torch
    from transformers import set_seed

    cuda = torch.cuda.is_available()
    if cfg.cpu_threads and not cuda:
        torch.set_num_threads(cfg.cpu_threads)
    weight_dtype, amp, master = amp_flags(cfg, cuda)
    set_seed(cfg.seed)
    events.emit("status", message=f"loading {cfg.model}")
    model, tokenizer = load_model_and_tokenizer(prep.model_source, weight_dtype)
    train_examples = tdata.build_dataset(prep.train_texts, tokenizer, cfg)
    eval_examples = tdata.build_dataset(prep.eval_texts, tokenizer, cfg)
    if not train_examples:
        raise TrainingInputError("no training sequence left after tokenization")
    if cfg.lora:
        model = apply_lora(model, cfg)
    return _Loaded(model, tokenizer, train_examples, eval_examples, weight_dtype, amp, master, cuda)


def _training_arguments(cfg: FinetuneConfig, job_dir: Path, run_name: str, do_eval: bool, resume_from: str | None,
                        cuda: bool, amp: dict[str, bool]) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(job_dir / CHECKPOINTS_DIR),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.effective_lr(),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type="linear",
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_strategy="steps",
        logging_steps=1,
        eval_strategy="steps" if do_eval else "no",
        eval_steps=cfg.eval_every if do_eval else None,
        eval_on_start=do_eval and cfg.eval_on_start and not resume_from,
        prediction_loss_only=True,  # never gather logits (vocab x tokens) during eval
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=cfg.keep_checkpoints,
        load_best_model_at_end=do_eval,
        metric_for_best_model="eval_loss" if do_eval else None,
        greater_is_better=False if do_eval else None,
        seed=cfg.seed,
        use_cpu=not cuda,
        report_to=cfg.report_to,  # "none" unless --report-to tensorboard|trackio
        project=TRACKIO_PROJECT,
        run_name=run_name,
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        **amp,
    )


def _collator(cfg: FinetuneConfig, loaded: _Loaded, device: Any,
              events: EventWriter) -> tuple[Callable[[list[dict]], dict], bool]:
    """(the training batches' collator, packed?): packed where packing keeps this model's texts apart, else
    padded; then one batch of the longest texts, laid out so, must fit in memory."""
    pad_collator = tdata.PadCollator(loaded.tokenizer.pad_token_id)
    train_collator: Callable[[list[dict]], dict] = pad_collator
    if cfg.packing:
        exact, worst = packing_is_exact(loaded.model, loaded.train_examples, loaded.tokenizer.pad_token_id)
        if exact:
            train_collator = tdata.PackCollator(loaded.tokenizer.pad_token_id, cfg.max_length)
        else:
            events.emit("status", message=f"packing changes this model's losses (by {worst:.2g}); training padded")
    if cfg.memory_check:
        events.emit("status", message="checking memory on the longest batch")
        probe_s = memory_check(loaded.model, loaded.train_examples, cfg, device, loaded.amp, train_collator)
        events.emit("status", message=f"memory check passed ({probe_s:.1f} s for one batch)")
    return train_collator, train_collator is not pad_collator


def _trainer(cfg: FinetuneConfig, loaded: _Loaded, args: Any, collator: Callable[[list[dict]], dict],
             callback: Any, do_eval: bool) -> Any:
    from transformers import Trainer

    optimizer_cls = None
    if loaded.master:
        optimizer_cls = (master_adamw_class(), {"lr": cfg.effective_lr(), "betas": (0.9, 0.999), "eps": 1e-8})
    trainer_cls = _kl_trainer_class(cfg.kl_weight) if cfg.kl_weight > 0 else Trainer
    return trainer_cls(
        model=loaded.model,
        args=args,
        train_dataset=tdata.ListDataset(loaded.train_examples),
        eval_dataset=tdata.ListDataset(loaded.eval_examples) if do_eval else None,
        # Evaluation packs too: its loss is the mean of per-batch means, each batch weighted by the
        # eval batch size (not by its rows), so eval_loss is the padded one.
        data_collator=collator,
        processing_class=loaded.tokenizer,
        callbacks=[callback],
        optimizer_cls_and_kwargs=optimizer_cls,
    )


def _metrics(state: Any, result: Any, last_loss: float | None, runtime_s: float, do_eval: bool) -> dict[str, Any]:
    """The final metrics, from the Trainer's state: steps, losses, tokens, and the eval losses with the best step."""
    metrics: dict[str, Any] = {
        "steps": state.global_step,
        "total_steps": state.max_steps,
        "train_loss_final": last_loss,
        "train_loss_mean": clean_float(result.training_loss),  # mean over the steps since this run (re)started
        "train_runtime_s": runtime_s,
        "tokens_seen": state.num_input_tokens_seen,
    }
    if do_eval:
        evals = [h for h in state.log_history if "eval_loss" in h]
        best = clean_float(state.best_metric)
        metrics |= {
            "eval_loss": best,
            "perplexity": clean_float(math.exp(min(best, 50))) if best is not None else None,
            "best_step": state.best_global_step,
            "eval_loss_first": clean_float(evals[0]["eval_loss"]) if evals else None,
            "eval_history": [{"step": h["step"], "eval_loss": clean_float(h["eval_loss"])} for h in evals],
        }
    return metrics


def _save_final(trainer: Any, cfg: FinetuneConfig, prep: Prepared, loaded: _Loaded, metrics: dict[str, Any],
                job_id: str | None, out: Path, job_dir: Path, events: EventWriter) -> None:
    """Write the final model (merged, or the LoRA adapter naming its base) and its card into ``out``, atomically."""
    import torch

    events.emit("status", message="saving the final model")
    tmp = out.with_name(f".{out.name}.tmp-{job_id or os.getpid()}")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
    final = trainer.model
    base_ref = base_model_reference(cfg.model, prep.model_source)
    kind = "full"
    if cfg.lora and cfg.merge_lora:
        final = final.merge_and_unload()
    elif cfg.lora:
        kind = "lora"
        final.peft_config["default"].base_model_name_or_path = base_ref
    if not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        if kind == "full" and loaded.weight_dtype == torch.float32 and loaded.amp:
            # halve the file; it loads in that dtype anyway
            final.to(torch.bfloat16 if loaded.amp.get("bf16") else torch.float16)
        if trainer.is_world_process_zero():
            # save_embedding_layers=False: the vocabulary is unchanged (and peft would look for the base's config).
            final.save_pretrained(str(tmp), **({"save_embedding_layers": False} if kind == "lora" else {}))
            loaded.tokenizer.save_pretrained(str(tmp))
    else:
        trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        from toolformer_app.models.model_card import relative_paths

        # the card names the data and the output by paths relative to the model folder, never the machine's
        card = relative_paths(_card(cfg, prep, metrics, job_id, kind, base_ref), out)
        write_atomic(tmp / models.CARD_NAME, json.dumps(card, indent=2, default=str))
        _publish(tmp, out, cfg.overwrite)
        if cfg.cleanup_checkpoints:
            shutil.rmtree(job_dir / CHECKPOINTS_DIR, ignore_errors=True)
            (job_dir / LATEST_NAME).unlink(missing_ok=True)
            events.emit("status", message="removed the intermediate checkpoints (the final model is complete)")


def run_finetune(
    cfg: FinetuneConfig,
    job_dir: str | Path,
    *,
    job_id: str | None = None,
    events: EventWriter | None = None,
    resume_from: str | None = None,
    stop: threading.Event | None = None,
    on_checkpoint: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Train and write ``cfg.out_dir``; returns the final metrics (also in the card and the "done" event).

    ``resume_from`` is a checkpoint-N dir (see ``latest_checkpoint``); ``stop`` is set by a signal
    handler to stop at the next step end, after saving a checkpoint (raises JobCancelled).
    """
    events = events or EventWriter(None)
    stop = stop or threading.Event()
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.out_dir:
        raise TrainingInputError("no output dir (--out)")
    out = Path(cfg.out_dir).expanduser().resolve()
    prep = validate_inputs(cfg)
    for note in prep.data.warnings():
        events.emit("status", message=note)

    loaded = _load(cfg, prep, events)
    if stop.is_set():
        raise JobCancelled(checkpoint_step(resume_from), resume_from)
    do_eval = bool(loaded.eval_examples)
    args = _training_arguments(cfg, job_dir, job_id or out.name, do_eval, resume_from, loaded.cuda, loaded.amp)
    collator, packed = _collator(cfg, loaded, args.device, events)
    _tracker_dirs(cfg, job_dir)
    callback = _callbacks(events, job_dir, stop, on_checkpoint)
    trainer = _trainer(cfg, loaded, args, collator, callback, do_eval)

    examples = loaded.train_examples
    steps_per_epoch = math.ceil(len(examples) / (cfg.batch_size * cfg.grad_accum * max(1, args.world_size)))
    total = cfg.max_steps or math.ceil(steps_per_epoch * cfg.epochs)
    events.emit(
        "start", step=checkpoint_step(resume_from), total_steps=total, resumed_from=resume_from,
        data=prep.data.summary(), train_sequences=len(examples), eval_sequences=len(loaded.eval_examples),
        train_stats=tdata.dataset_stats(examples), device=str(args.device), world_size=args.world_size,
        precision=precision_label(loaded.weight_dtype, loaded.amp, loaded.master, cfg.lora), packing=packed,
    )
    t0 = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    except Exception as exc:
        if is_oom(exc):
            raise TrainingError(oom_advice(cfg, cfg.max_length)) from exc
        raise
    state = trainer.state
    if callback.stopping:
        raise JobCancelled(state.global_step, latest_checkpoint(job_dir))

    metrics = _metrics(state, result, callback.last_loss, round(time.time() - t0, 2), do_eval)
    _save_final(trainer, cfg, prep, loaded, metrics, job_id, out, job_dir, events)
    metrics["path"] = str(out)
    return metrics
