"""The finetune recipe: one dataclass, validated before any compute.

Defaults are the paper's Appendix B scaled down to a laptop (see ``FinetuneConfig``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

Precision = Literal["auto", "fp32", "bf16", "fp16"]
LongTexts = Literal["split", "truncate"]

# The learning rate when none is given: LoRA adapters start at zero and need a larger step.
DEFAULT_LR_FULL = 5e-5
DEFAULT_LR_LORA = 2e-4


class TrainingInputError(ValueError):
    """The data, the model or the hyperparameters cannot work; the message is one line that says why."""


REPORT_TO = ("none", "tensorboard", "trackio")  # experiment trackers HF Trainer reports to (report_to)


@dataclass
class FinetuneConfig:
    """Everything a finetune needs; serialised as JSON into the job store and the model card.

    Paper (Appendix B): batch 128, lr 1e-5, linear warmup over 10% of the steps, max length 1,024,
    at most 2k steps, perplexity on 1,000 held-out examples every 500 steps, best checkpoint kept.
    Our defaults keep the schedule shape but fit a 135M model on a CPU: small batches, shorter
    sequences, a higher learning rate (few steps, small model).
    """

    data: str = ""
    """Path to a JSONL file with a "text" field per line (the pipeline's dataset.jsonl)."""
    model: str = "smollm2-135m"
    """Base model: a preset, a hub id or a local directory (anything ``models.resolve`` accepts)."""
    out_dir: str = ""
    """Where the final checkpoint goes (``models.load(out_dir)`` loads it). Empty: data_dir/finetuned/<job id>."""
    learning_rate: float | None = None
    """Peak learning rate; None picks 5e-5 (full) or 2e-4 (LoRA). Paper: 1e-5 at batch 128."""
    batch_size: int = 4
    """Sequences per device per micro-step."""
    grad_accum: int = 1
    """Micro-steps per optimizer step; the effective batch is batch_size x grad_accum x devices."""
    epochs: float = 3.0
    """Passes over the training split (ignored when max_steps is set)."""
    max_steps: int | None = None
    """Optimizer steps; overrides epochs. Paper: at most 2k."""
    warmup_ratio: float = 0.1
    """Fraction of the steps with a linear warmup, then linear decay to 0 (paper: 10%)."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 256
    """Tokens per sequence (paper: 1,024). Longer texts are split or truncated (``long_texts``)."""
    long_texts: LongTexts = "split"
    """"split": cut long texts into windows, never inside a call; "truncate": keep the first window."""
    packing: bool = True
    """Pack the texts of each batch into as few rows of max_length as fit, attention kept inside each text
    (position ids restart per text; transformers builds the block-diagonal mask from them), instead of
    padding every text to the longest. Same texts per step and the same loss on the same tokens, with no
    compute spent on padding. It is checked on the loaded model first, and a model that would let texts
    see each other trains padded. The held-out evaluation packs too, with the same eval_loss."""
    mask_results: bool = True
    """Do not train on the tool result tokens (between "->" and "]"); they stay in the input as conditioning.
    The held-out loss uses the same labels. Why this is the default: see the ``training.data`` docstring."""
    eval_fraction: float = 0.1
    """Held-out share of the examples for perplexity (0 disables evaluation and best-checkpoint selection)."""
    max_eval_examples: int = 1000
    """Cap on the held-out set (paper: 1,000)."""
    eval_every: int = 50
    """Steps between held-out evaluations (paper: 500)."""
    eval_on_start: bool = True
    """Measure the base model's held-out perplexity first, so the curve has a starting point."""
    save_every: int = 50
    """Steps between resumable checkpoints; a multiple of eval_every when evaluation is on."""
    keep_checkpoints: int = 2
    """Intermediate checkpoints kept on disk (the best one is never deleted)."""
    cleanup_checkpoints: bool = True
    """Delete the intermediate checkpoints once the final model is written: they only serve resuming,
    and a full one of a 135M model holds ~1.9 GB (weights, fp32 master copy and Adam moments)."""
    seed: int = 0
    lora: bool = False
    """Train a LoRA adapter instead of every weight (the output is an adapter dir)."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    kl_weight: float = 0.0
    """Weight of a KL term to the base model on call-free tokens (0: off, the paper's plain LM loss). Each
    trained token of a text before its first call adds KL(base || model) of the next-token distributions,
    averaged over those tokens, where the base is this model with its LoRA adapters off (so it needs
    --lora and costs one more forward pass a step, without gradients). It anchors what the finetune
    must not change (the text without calls) to what the base predicts, against forgetting; tokens at and
    after a call are trained by the LM loss alone. The held-out loss stays the LM loss."""
    merge_lora: bool = False
    """Write merged full weights instead of the adapter."""
    precision: Precision = "auto"
    """auto: GPU -> fp32 master weights + bf16 autocast (fp16 if no bf16); CPU -> bf16 weights with fp32
    master weights in the optimizer (bf16 matmuls are 2-3x faster there, and the fp32 copy keeps small
    updates from rounding away)."""
    cpu_threads: int | None = None
    """Torch threads on a CPU (None: torch's default, one per core). On a machine shared with other
    busy processes, 1 avoids OpenMP oversubscription, which can make each step several times slower."""
    memory_check: bool = True
    """Run one forward+backward on the longest batch first, to fail early with advice on OOM."""
    overwrite: bool = False
    """Replace an existing out_dir."""
    report_to: str = "none"
    """Where HF ``Trainer`` also reports the run: "none" (offline-safe; the app's own events only),
    "tensorboard" (event files in <job dir>/tensorboard) or "trackio" (a local dashboard, stored in
    <data dir>/trackio; project "toolformer-studio", one run per job). Each needs its package installed."""
    clause_inputs: str = ""
    """Comma-separated tools whose calls in the data are clause calls (``generate --clause-calls``): the card's
    ``inference.clause_inputs``, so that decoders write those inputs as the calls were made (e.g. "QA")."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried into the card (e.g. the pipeline run that made the data)."""

    def effective_lr(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LR_LORA if self.lora else DEFAULT_LR_FULL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingInputError(f"unknown finetune option(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> FinetuneConfig:
        return dataclasses.replace(self, **changes)


def validate_hyperparameters(cfg: FinetuneConfig) -> None:
    """Raise TrainingInputError for settings that cannot train; cheap, no I/O besides out_dir."""

    def bad(msg: str) -> None:
        raise TrainingInputError(msg)

    lr = cfg.effective_lr()
    if not math.isfinite(lr) or lr <= 0:
        bad(f"learning rate must be > 0 (got {lr})")
    if lr > 1e-2:
        bad(f"learning rate {lr} is far too high for finetuning (use <= 1e-2; the paper used 1e-5)")
    if int(cfg.batch_size) != cfg.batch_size or cfg.batch_size < 1:
        bad(f"batch size must be an integer >= 1 (got {cfg.batch_size})")
    if int(cfg.grad_accum) != cfg.grad_accum or cfg.grad_accum < 1:
        bad(f"gradient accumulation must be an integer >= 1 (got {cfg.grad_accum})")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        bad(f"max steps must be >= 1 (got {cfg.max_steps}); leave it unset to train by epochs")
    if cfg.max_steps is None and not (cfg.epochs > 0 and math.isfinite(cfg.epochs)):
        bad(f"epochs must be > 0 (got {cfg.epochs})")
    if not 0 <= cfg.warmup_ratio < 1:
        bad(f"warmup ratio must be in [0, 1) (got {cfg.warmup_ratio})")
    if cfg.weight_decay < 0:
        bad(f"weight decay must be >= 0 (got {cfg.weight_decay})")
    if cfg.max_grad_norm < 0:
        bad(f"max grad norm must be >= 0 (got {cfg.max_grad_norm})")
    if cfg.max_length < 16:
        bad(f"max length must be >= 16 tokens (got {cfg.max_length}); a call alone takes ~15")
    if cfg.long_texts not in ("split", "truncate"):
        bad(f"long_texts must be 'split' or 'truncate' (got {cfg.long_texts!r})")
    if not 0 <= cfg.eval_fraction <= 0.5:
        bad(f"eval fraction must be in [0, 0.5] (got {cfg.eval_fraction}); the rest is for training")
    if cfg.max_eval_examples < 1:
        bad(f"max eval examples must be >= 1 (got {cfg.max_eval_examples})")
    if cfg.eval_every < 1 or cfg.save_every < 1:
        bad(f"eval_every and save_every must be >= 1 (got {cfg.eval_every}, {cfg.save_every})")
    if cfg.eval_fraction > 0 and cfg.save_every % cfg.eval_every:
        # The best checkpoint is chosen among saved ones, so every save needs a fresh eval.
        bad(f"save_every ({cfg.save_every}) must be a multiple of eval_every ({cfg.eval_every})")
    if cfg.keep_checkpoints < 1:
        bad(f"keep_checkpoints must be >= 1 (got {cfg.keep_checkpoints}); resuming needs one")
    if cfg.lora and (cfg.lora_r < 1 or cfg.lora_alpha <= 0 or not 0 <= cfg.lora_dropout < 1):
        bad(f"LoRA needs r >= 1, alpha > 0, dropout in [0, 1) (got {cfg.lora_r}, {cfg.lora_alpha}, {cfg.lora_dropout})")
    if not (math.isfinite(cfg.kl_weight) and cfg.kl_weight >= 0):
        bad(f"kl weight must be >= 0 (got {cfg.kl_weight})")
    if cfg.kl_weight > 0 and not cfg.lora:
        bad("--kl-weight needs --lora: the base is the model with its adapters off")
    if cfg.cpu_threads is not None and cfg.cpu_threads < 1:
        bad(f"cpu threads must be >= 1 (got {cfg.cpu_threads})")
    if cfg.report_to not in REPORT_TO:
        bad(f"report_to must be one of {', '.join(REPORT_TO)} (got {cfg.report_to!r})")
    if cfg.report_to != "none":
        import importlib.util

        if importlib.util.find_spec(cfg.report_to) is None:
            bad(f"--report-to {cfg.report_to} needs the {cfg.report_to} package: pip install {cfg.report_to}")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        bad(f"precision must be auto, fp32, bf16 or fp16 (got {cfg.precision!r})")
    if cfg.out_dir:
        out = Path(cfg.out_dir).expanduser()
        if out.exists() and not out.is_dir():
            bad(f"output {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
            bad(f"output dir {out} is not empty; choose another --out or pass --overwrite")
