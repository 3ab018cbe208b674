"""Finetune M on C* with the Hugging Face Trainer (so `accelerate launch` gives DDP/FSDP for free).

``run_finetune`` is what the job process runs: validate, load, check memory on one batch, train
with periodic held-out evaluation and resumable checkpoints, keep the best checkpoint by eval
loss, and write the final model directory atomically with its ``toolformer_card.json``.
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
from toolformer_app.training.events import EventWriter, clean_float
from toolformer_app.training.options import FinetuneConfig, TrainingInputError, validate_hyperparameters

LATEST_NAME = "latest"  # a file in the job dir naming the newest complete checkpoint
CHECKPOINTS_DIR = "checkpoints"


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


def resolve_model(name: str) -> str:
    """models.resolve, with every failure as a one-line TrainingInputError."""
    name = (name or "").strip()
    looks_like_path = name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "")
    if looks_like_path and not Path(name).expanduser().exists():
        raise TrainingInputError(f"model: directory {name} does not exist")
    try:
        return models.resolve(name)
    except models.ModelLoadError as exc:
        raise TrainingInputError(f"model: {exc}") from exc
    except Exception as exc:  # e.g. huggingface_hub's id validation
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingInputError(f"model {name!r}: {first}") from exc


# ---------------------------------------------------------------- precision and optimizer


def amp_flags(cfg: FinetuneConfig, cuda: bool) -> tuple[Any, dict[str, bool], bool]:
    """(weight dtype, Trainer bf16/fp16 flags, master weights in the optimizer?)."""
    import torch

    if cfg.precision == "fp32":
        return torch.float32, {}, False
    if not cuda and cfg.precision == "auto":
        from toolformer_app.models import cpu_has_native_bf16

        if not cpu_has_native_bf16():  # emulated bf16: backward ran 26x slower than fp32 (4 vs 106 tok/s)
            return torch.float32, {}, False
    if not cuda:
        if cfg.precision == "fp16":
            raise TrainingInputError("fp16 needs a GPU; use --precision bf16 or fp32 on a CPU")
        # CPU autocast is several times slower than bf16 weights here, so train in bf16 and keep
        # an fp32 master copy in the optimizer (LoRA: the adapters are fp32 already).
        return torch.bfloat16, {}, not cfg.lora
    half_bf16 = cfg.precision in ("auto", "bf16") and torch.cuda.is_bf16_supported()
    if cfg.precision == "bf16" and not half_bf16:
        raise TrainingInputError("this GPU has no bf16; use --precision fp16 or fp32")
    flags = {"bf16": True} if half_bf16 else {"fp16": True}
    # Mixed precision on a GPU: fp32 weights, half activations. A frozen LoRA base can stay half.
    base = (torch.bfloat16 if half_bf16 else torch.float16) if cfg.lora else torch.float32
    return base, flags, False


def _master_adamw_class():
    import torch

    class MasterWeightAdamW(torch.optim.AdamW):
        """AdamW that steps fp32 copies of low-precision (bf16) parameters and writes them back.

        With bf16 weights, an update of lr ~ 5e-5 is below half a ulp for any weight above ~0.02
        and would round away; the fp32 master copy accumulates it. The copies are part of the
        state dict, so a resumed job continues from the exact weights.
        """

        def __init__(self, params, **kwargs):
            groups = list(params)
            if groups and not isinstance(groups[0], dict):
                groups = [{"params": groups}]
            self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
            master_groups = []
            for group in groups:
                masters = []
                for p in group["params"]:
                    m = p.detach().to(torch.float32, copy=True).requires_grad_(True)
                    self._pairs.append((p, m))
                    masters.append(m)
                master_groups.append({**group, "params": masters})
            try:  # the fused kernel is ~5x faster than foreach on a CPU (0.5 s vs 2.5 s for 135M params)
                super().__init__(master_groups, **({"fused": True} | kwargs))
            except (RuntimeError, TypeError, ValueError):
                super().__init__(master_groups, **kwargs)

        @torch.no_grad()
        def step(self, closure=None):
            for p, m in self._pairs:
                m.grad = None if p.grad is None else p.grad.to(torch.float32)
            loss = super().step(closure)
            for p, m in self._pairs:
                p.copy_(m)
            return loss

        def zero_grad(self, set_to_none: bool = True) -> None:
            super().zero_grad(set_to_none=set_to_none)
            for p, _ in self._pairs:
                p.grad = None

        def state_dict(self):
            state = super().state_dict()
            state["master_weights"] = [m.detach() for _, m in self._pairs]
            return state

        def load_state_dict(self, state_dict):
            state_dict = dict(state_dict)
            masters = state_dict.pop("master_weights", None)
            super().load_state_dict(state_dict)
            with torch.no_grad():
                for i, (p, m) in enumerate(self._pairs):
                    m.copy_(masters[i] if masters is not None else p)

    return MasterWeightAdamW


def _precision_label(weight_dtype: Any, amp: dict[str, bool], master: bool, lora: bool) -> str:
    weights = str(weight_dtype).replace("torch.", "").replace("bfloat16", "bf16").replace("float", "fp")
    label = f"{weights} weights" + (" + fp32 master copy" if master else "")
    if lora:
        label = f"{weights} frozen base + fp32 LoRA adapters"
    return label + (f" + {next(iter(amp))} autocast" if amp else "")


# ---------------------------------------------------------------- model loading


def _load_model_and_tokenizer(source: str, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import toolformer_app.models.palm  # noqa: F401  (registers the PaLM architecture)

    adapter = Path(source) / "adapter_config.json"
    try:
        if adapter.exists():  # finetuning a LoRA result again: start from the merged weights
            from peft import PeftModel

            base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
            base = AutoModelForCausalLM.from_pretrained(models.resolve(base_name), dtype=dtype)
            model = PeftModel.from_pretrained(base, source).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except models.ModelLoadError as exc:
        raise TrainingInputError(f"model: {exc}") from exc
    except OSError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingInputError(f"model: could not load {source!r}: {first}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    return model, tokenizer


def _apply_lora(model: Any, cfg: FinetuneConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules="all-linear", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def load_training_model(cfg: FinetuneConfig) -> tuple[Any, Any, dict[str, bool]]:
    """The model as ``run_finetune`` trains it (its precision, LoRA applied when ``cfg.lora``), its
    tokenizer and the autocast flags; for measurements beside a run (``bench finetune``)."""
    import torch

    weight_dtype, amp, _ = amp_flags(cfg, torch.cuda.is_available())
    model, tokenizer = _load_model_and_tokenizer(resolve_model(cfg.model), weight_dtype)
    return (_apply_lora(model, cfg) if cfg.lora else model), tokenizer, amp


def base_model_reference(name: str, source: str) -> str:
    """What adapter_config.json records as its base: the preset or hub name when portable, else the directory."""
    if name in models.PRESETS or not Path(name).expanduser().exists():
        return name
    return str(Path(source).resolve())


# ---------------------------------------------------------------- memory


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def oom_advice(cfg: FinetuneConfig, width: int) -> str:
    tips = [f"lower --batch-size (now {cfg.batch_size}; raise --grad-accum to keep the effective batch)",
            f"lower --max-length (now {cfg.max_length})"]
    if not cfg.lora:
        tips.append("or use --lora")
    return f"out of memory on one batch of {cfg.batch_size} x {width} tokens: " + ", ".join(tips)


def memory_check(model: Any, examples: list[dict], cfg: FinetuneConfig, device: Any, amp: dict[str, bool],
                 collator: Callable[[list[dict]], dict] | None = None) -> float:
    """One real forward+backward on the longest batch (as ``collator`` lays it out; padded by default);
    raises TrainingInputError with advice on OOM.

    Returns the probe's seconds (a first estimate of the step time).
    """
    import torch

    batch = sorted(examples, key=lambda e: len(e["input_ids"]), reverse=True)[: cfg.batch_size]
    inputs = (collator or tdata.PadCollator(0))(batch)
    inputs.pop(tdata.KL_MASK, None)
    width = inputs["input_ids"].shape[1]
    inputs = {k: v.to(device) for k, v in inputs.items()}
    model.to(device)
    model.train()
    dtype = torch.bfloat16 if amp.get("bf16") else torch.float16
    start = time.perf_counter()
    try:
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=bool(amp)):
            loss = model(**inputs).loss
        loss.backward()
    except Exception as exc:
        if _is_oom(exc):
            raise TrainingInputError(oom_advice(cfg, width)) from exc
        raise
    finally:
        model.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if not math.isfinite(float(loss.detach().float())):
        raise TrainingInputError("the loss on the first batch is not finite; try --precision fp32")
    return time.perf_counter() - start


# ---------------------------------------------------------------- packing


def packing_is_exact(model: Any, examples: list[dict], pad_token_id: int, n: int = 4) -> tuple[bool, float]:
    """Whether this model keeps packed texts apart: the ``n`` shortest texts, packed into one row, must
    give each text the summed loss it gets padded (a model that ignores position ids, or attends across
    the row, fails). Returns (exact, largest relative difference). Runs in eval mode (no dropout).
    """
    import torch

    batch = sorted(examples, key=lambda e: len(e["input_ids"]))[:n]
    if len(batch) < 2:
        return True, 0.0
    was_training = model.training
    model.eval()
    try:
        padded = tdata.text_losses(model, batch, pad_token_id)
        packed = tdata.text_losses(model, batch, pad_token_id, max_length=sum(len(e["input_ids"]) for e in batch))
    finally:
        model.train(was_training)
    worst = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(padded, packed, strict=True))
    # fp32 agrees to ~1e-6; bf16 matmuls of different shapes round differently, a few parts in 1e3
    tol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2
    return worst <= tol, worst


# ---------------------------------------------------------------- checkpoints


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _complete(checkpoint: Path) -> bool:
    # trainer_state.json is written last by Trainer._save_checkpoint: its presence means complete.
    return (checkpoint / "trainer_state.json").exists()


def latest_checkpoint(job_dir: str | Path) -> str | None:
    """The checkpoint a resume starts from: the "latest" pointer, else the newest complete checkpoint-N."""
    job_dir = Path(job_dir)
    pointer = job_dir / LATEST_NAME
    if pointer.exists():
        target = job_dir / CHECKPOINTS_DIR / pointer.read_text().strip()
        if target.is_dir() and _complete(target):
            return str(target)
    found = []
    for d in (job_dir / CHECKPOINTS_DIR).glob("checkpoint-*"):
        suffix = d.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and _complete(d):
            found.append((int(suffix), d))
    return str(max(found)[1]) if found else None


def checkpoint_step(path: str | None) -> int:
    if not path:
        return 0
    suffix = Path(path).name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


# ---------------------------------------------------------------- callbacks


def _callbacks(events: EventWriter, job_dir: Path, stop: threading.Event, on_checkpoint):
    import torch
    from transformers import TrainerCallback

    class Events(TrainerCallback):
        """Turns Trainer logs into our progress/eval/checkpoint events, and honours a stop request."""

        def __init__(self):
            self.session_start = time.time()
            self.first_step = 0
            self.step_t0 = time.perf_counter()
            self.train_time = self.last_train_time = 0.0
            self.last_tokens = 0
            self.last_saved = -1
            self.last_loss = None
            self.stopping = False

        def on_train_begin(self, args, state, control, **kw):
            self.session_start = time.time()
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
            per_step = (now - self.session_start) / done if done > 0 else None
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
            if not _complete(path):
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
    }


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
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

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

    cuda = torch.cuda.is_available()
    if cfg.cpu_threads and not cuda:
        torch.set_num_threads(cfg.cpu_threads)
    weight_dtype, amp, master = amp_flags(cfg, cuda)
    set_seed(cfg.seed)
    events.emit("status", message=f"loading {cfg.model}")
    model, tokenizer = _load_model_and_tokenizer(prep.model_source, weight_dtype)
    train_examples = tdata.build_dataset(prep.train_texts, tokenizer, cfg)
    eval_examples = tdata.build_dataset(prep.eval_texts, tokenizer, cfg)
    if not train_examples:
        raise TrainingInputError("no training sequence left after tokenization")
    if cfg.lora:
        model = _apply_lora(model, cfg)
    if stop.is_set():
        raise JobCancelled(checkpoint_step(resume_from), resume_from)

    do_eval = bool(eval_examples)
    args = TrainingArguments(
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
        run_name=job_id or out.name,
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        **amp,
    )
    pad_collator = tdata.PadCollator(tokenizer.pad_token_id)
    train_collator: Callable[[list[dict]], dict] = pad_collator
    if cfg.packing:
        exact, worst = packing_is_exact(model, train_examples, tokenizer.pad_token_id)
        if exact:
            train_collator = tdata.PackCollator(tokenizer.pad_token_id, cfg.max_length)
        else:
            events.emit("status", message=f"packing changes this model's losses (by {worst:.2g}); training padded")
    if cfg.memory_check:
        events.emit("status", message="checking memory on the longest batch")
        probe_s = memory_check(model, train_examples, cfg, args.device, amp, train_collator)
        events.emit("status", message=f"memory check passed ({probe_s:.1f} s for one batch)")

    _tracker_dirs(cfg, job_dir)
    callback = _callbacks(events, job_dir, stop, on_checkpoint)
    optimizer_cls = None
    if master:
        optimizer_cls = (_master_adamw_class(), {"lr": cfg.effective_lr(), "betas": (0.9, 0.999), "eps": 1e-8})
    trainer_cls = _kl_trainer_class(cfg.kl_weight) if cfg.kl_weight > 0 else Trainer
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=tdata.ListDataset(train_examples),
        eval_dataset=tdata.ListDataset(eval_examples) if do_eval else None,
        # Evaluation packs too: its loss is the mean of per-batch means, each batch weighted by the
        # eval batch size (not by its rows), so eval_loss is the padded one.
        data_collator=train_collator,
        processing_class=tokenizer,
        callbacks=[callback],
        optimizer_cls_and_kwargs=optimizer_cls,
    )
    steps_per_epoch = math.ceil(len(train_examples) / (cfg.batch_size * cfg.grad_accum * max(1, args.world_size)))
    total = cfg.max_steps or math.ceil(steps_per_epoch * cfg.epochs)
    start_step = checkpoint_step(resume_from)
    events.emit(
        "start", step=start_step, total_steps=total, resumed_from=resume_from,
        data=prep.data.summary(), train_sequences=len(train_examples), eval_sequences=len(eval_examples),
        train_stats=tdata.dataset_stats(train_examples), device=str(args.device), world_size=args.world_size,
        precision=_precision_label(weight_dtype, amp, master, cfg.lora),
        packing=train_collator is not pad_collator,
    )
    t0 = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
    except Exception as exc:
        if _is_oom(exc):
            raise TrainingError(oom_advice(cfg, cfg.max_length)) from exc
        raise
    state = trainer.state
    if callback.stopping:
        raise JobCancelled(state.global_step, latest_checkpoint(job_dir))

    metrics: dict[str, Any] = {
        "steps": state.global_step,
        "total_steps": state.max_steps,
        "train_loss_final": callback.last_loss,
        "train_loss_mean": clean_float(result.training_loss),  # mean over this session's steps
        "train_runtime_s": round(time.time() - t0, 2),
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
        if kind == "full" and weight_dtype == torch.float32 and amp:
            final.to(torch.bfloat16 if amp.get("bf16") else torch.float16)  # halve the file; loads in that dtype anyway
        if trainer.is_world_process_zero():
            # save_embedding_layers=False: the vocabulary is unchanged (and peft would look for the base's config).
            final.save_pretrained(str(tmp), **({"save_embedding_layers": False} if kind == "lora" else {}))
            tokenizer.save_pretrained(str(tmp))
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
    metrics["path"] = str(out)
    return metrics
