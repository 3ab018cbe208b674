"""Finetuning on C* (the paper's section 4.1 / Appendix B) and the background jobs that run it.

Library API (the UI and the CLI share it):
    FinetuneConfig, TrainingInputError            the recipe and its validation errors
    validate_inputs(cfg)                          every check that needs no model weights
    run_finetune(cfg, job_dir, ...)               train in this process (what a job process runs)
    check_no_active_job / start_job / list_jobs / get_job / read_events / log_tail / cancel_job / resume_job /
    mark_interrupted / wait_job                   separate-process jobs, recorded in DATA_DIR/jobs.sqlite
"""

from toolformer_app.training.data import IGNORE_INDEX, build_examples, load_texts, result_spans
from toolformer_app.training.jobs import (
    Job,
    JobConflictError,
    JobError,
    JobStoreError,
    cancel_job,
    check_no_active_job,
    get_job,
    list_jobs,
    log_tail,
    mark_interrupted,
    read_events,
    resume_job,
    start_job,
    wait_job,
)
from toolformer_app.training.options import FinetuneConfig, TrainingInputError
from toolformer_app.training.trainer import (
    JobCancelled,
    TrainingError,
    latest_checkpoint,
    run_finetune,
    validate_inputs,
)

__all__ = [
    "IGNORE_INDEX",
    "FinetuneConfig",
    "Job",
    "JobCancelled",
    "JobConflictError",
    "JobError",
    "JobStoreError",
    "TrainingError",
    "TrainingInputError",
    "build_examples",
    "cancel_job",
    "check_no_active_job",
    "get_job",
    "latest_checkpoint",
    "list_jobs",
    "load_texts",
    "log_tail",
    "mark_interrupted",
    "read_events",
    "result_spans",
    "resume_job",
    "run_finetune",
    "start_job",
    "validate_inputs",
    "wait_job",
]
