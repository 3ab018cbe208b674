"""Real finetune jobs: the default model (smollm2-135m) in real subprocesses started through the job API."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from toolformer_app import models
from toolformer_app.training import (
    FinetuneConfig,
    cancel_job,
    get_job,
    mark_interrupted,
    read_events,
    resume_job,
    start_job,
    wait_job,
)
from toolformer_app.training.jobs import group_alive, pid_alive

pytestmark = pytest.mark.slow

CSTAR = [
    "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test.",
    "The farm had 12 cows and bought 30 more, so it now has 42 [Calculator(12 + 30) -> 42] cows.",
    "A ticket costs 15 dollars, so 7 tickets cost 105 [Calculator(15 * 7) -> 105] dollars in total.",
    "The tank held 250 litres and lost 75, leaving 175 [Calculator(250 - 75) -> 175] litres.",
    "Each box has 24 pencils, so 9 boxes hold 216 [Calculator(24 * 9) -> 216] pencils.",
    "The class of 36 split into 4 groups of 9 [Calculator(36 / 4) -> 9] students.",
    "He ran 5 km on Monday and 8 km on Tuesday, 13 [Calculator(5 + 8) -> 13] km in all.",
    "The price fell from 80 to 60, a drop of 25 [Calculator((80 - 60) / 80 * 100) -> 25] percent.",
]


@pytest.fixture()
def cstar(tmp_path) -> Path:
    path = tmp_path / "dataset.jsonl"
    with open(path, "w") as f:
        for text in CSTAR:
            f.write(json.dumps({"text": text, "original": text, "calls": []}) + "\n")
    return path


def small(cstar: Path, out: Path, **kw) -> FinetuneConfig:
    # One thread: the test machine's 2 cores are shared, and oversubscribed OpenMP is ~5x slower.
    base = dict(data=str(cstar), out_dir=str(out), batch_size=2, max_length=64, eval_fraction=0.25,
                keep_checkpoints=1, seed=0, cpu_threads=1)
    return FinetuneConfig(**(base | kw))


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_finetune_default_model_in_a_job_process(cstar, tmp_path):
    out = tmp_path / "model"
    # One checkpoint (step 6): a full one holds 1.6 GB of optimizer state (fp32 master weights + Adam).
    job_id = start_job(small(cstar, out, max_steps=6, eval_every=3, save_every=6, learning_rate=1e-4))
    job = wait_job(job_id, timeout=400)
    assert job.status == "succeeded", (job.error, job.log_path and Path(job.log_path).read_text()[-3000:])
    events = read_events(job_id)
    evals = [e for e in events if e["type"] == "eval"]
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == [1, 2, 3, 4, 5, 6]
    assert all(e["total_steps"] == 6 and e["loss"] > 0 for e in progress)
    # Held-out loss on C* falls: the base model before training vs the best checkpoint.
    assert evals[0]["step"] == 0 and min(e["eval_loss"] for e in evals[1:]) < evals[0]["eval_loss"]
    assert events[-1]["type"] == "done" and job.metrics["steps"] == 6 and job.metrics["perplexity"] > 1
    assert job.out_dir == str(out.resolve())
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [6]
    # Intermediate checkpoints only serve resuming: removed once the final model is complete.
    assert job.last_checkpoint is None and not (Path(job.job_dir) / "checkpoints").exists()
    card = json.loads((out / models.CARD_NAME).read_text())
    assert card["data"]["sha256"] == models.file_sha256(cstar) and card["base_model"] == "smollm2-135m"
    assert card["metrics"]["eval_loss"] == job.metrics["eval_loss"]
    model, tok = models.load(str(out))
    ids = tok("The farm had 10 cows and bought 5 more, so it now has", return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1] and tok.decode(gen[0, ids["input_ids"].shape[1]:]).strip()


def test_cancel_then_resume_continues_from_the_checkpoint(cstar, tmp_path):
    cfg = small(cstar, tmp_path / "adapter", lora=True, max_steps=6, save_every=2, eval_fraction=0, keep_checkpoints=2)
    job_id = start_job(cfg)
    wait_for(lambda: any(e["type"] == "checkpoint" for e in read_events(job_id)), 300, "the first checkpoint")
    job = get_job(job_id)
    cancelled = cancel_job(job_id, grace_s=90)
    assert cancelled.status == "cancelled", cancelled.error
    # The whole process group is gone (zombies, which only init can reap here, do not count).
    assert not pid_alive(job.pid) and not group_alive(job.pgid)
    ckpt_step = int(Path(cancelled.last_checkpoint).name.split("-")[1])
    assert ckpt_step >= 2 and Path(cancelled.last_checkpoint, "trainer_state.json").exists()
    assert read_events(job_id)[-1]["type"] == "cancelled"
    n_before = len(read_events(job_id))

    resume_job(job_id)
    job = wait_job(job_id, timeout=400)
    assert job.status == "succeeded", (job.error, Path(job.log_path).read_text()[-3000:])
    assert job.attempts == 2 and job.metrics["steps"] == 6
    later = read_events(job_id, since=n_before)
    start = next(e for e in later if e["type"] == "start")
    assert start["step"] == ckpt_step and start["resumed_from"] == cancelled.last_checkpoint
    steps = [e["step"] for e in later if e["type"] == "progress"]
    assert steps == list(range(ckpt_step + 1, 7))
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "smollm2-135m")


def test_killed_job_is_marked_interrupted(cstar, tmp_path):
    job_id = start_job(small(cstar, tmp_path / "never", max_steps=100))

    def running():
        job = get_job(job_id)
        return job if job.status == "running" else None

    job = wait_for(running, 120, "the job to run")
    os.kill(job.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(job.pid), 30, "the process to die")
    assert mark_interrupted() == [job_id] or get_job(job_id).status == "interrupted"
    after = get_job(job_id)
    assert after.status == "interrupted" and "ended without reporting" in after.error
    assert not (tmp_path / "never").exists()
