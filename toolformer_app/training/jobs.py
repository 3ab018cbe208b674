"""Finetune jobs: what the UI and the CLI call. The store is ``job_store`` (SQLite in the data dir), the
processes are ``job_process``; their names are importable from here too.

    start_job(cfg)  -> validates, records the job, spawns `python -m toolformer_app finetune --job-id ID`
                       in a new session (so cancel can signal its whole process group); one job at a time.
    cancel_job      -> SIGTERM to the group: the job saves a checkpoint at the next step end and exits;
                       SIGKILL after a grace period. The last complete checkpoint is always kept.
    resume_job      -> a new process for the same job id, from the last complete checkpoint.
    mark_interrupted-> jobs marked active whose process is gone (app restart, kill -9, reboot) become
                       "interrupted"; list_jobs/get_job call it, and the app should at start.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

from toolformer_app.training import job_store
from toolformer_app.training.events import read_event_file
from toolformer_app.training.job_process import (  # noqa: F401 - re-exported
    _CHILDREN,
    _CHILDREN_LOCK,
    _fail,
    _gone,
    _is_main_rank,
    _proc_start,
    _signal,
    _spawn,
    _tail,
    group_alive,
    pid_alive,
    run_job,
)
from toolformer_app.training.job_store import (  # noqa: F401 - re-exported
    _SCHEMA_READY,
    ACTIVE,
    FINAL,
    STATUSES,
    STORE_NAME,
    Job,
    JobConflictError,
    JobError,
    JobStoreError,
    _active_conflict,
    _db,
    _normalise,
    _row,
    _rows,
    _update,
    jobs_root,
    new_job_id,
    store_path,
)
from toolformer_app.training.options import FinetuneConfig

QUEUED_TIMEOUT_S = 120.0  # a queued job without a process after this long was never spawned


def check_no_active_job() -> None:
    """JobConflictError if a finetune is queued or running: callers check before writing anything."""
    mark_interrupted()
    with _db() as conn:
        _active_conflict(conn)


def create_job(cfg: FinetuneConfig | dict[str, Any], job_id: str | None = None, kind: str = "finetune") -> Job:
    """Record a queued job (refusing if another is active) and prepare its directory. Does not spawn."""
    job = job_store.create_job(cfg, job_id, kind)
    return get_job(job.id)


def start_job(cfg: FinetuneConfig | dict[str, Any], *, launcher: list[str] | None = None,
              job_id: str | None = None) -> str:
    """Validate ``cfg`` (TrainingInputError before any compute), record it and spawn its process.

    Raises JobConflictError if a finetune is already queued or running. ``launcher`` replaces
    ``[sys.executable]`` in front of ``-m toolformer_app finetune``, e.g. ``["accelerate", "launch"]``.
    Returns the job id.
    """
    from toolformer_app.training.trainer import validate_inputs

    job_id = job_id or new_job_id()
    cfg = _normalise(cfg, job_id)
    check_no_active_job()  # before validate_inputs: a refused launch costs nothing
    validate_inputs(cfg)
    job = create_job(cfg, job_id)
    _spawn(job, resume=False, launcher=launcher)
    return job_id


def list_jobs(limit: int = 100) -> list[Job]:
    """Jobs, newest first (dead "running" jobs are marked interrupted first)."""
    mark_interrupted()
    return _rows(limit=limit)


def get_job(job_id: str) -> Job:
    """One job, with its liveness checked; JobError if the id is unknown."""
    job = _row(job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    if job.active and _is_dead(job):
        mark_interrupted()
        job = _row(job_id)
    return job


def read_events(job_id: str, since: int = 0) -> list[dict[str, Any]]:
    """The job's events from number ``since`` on (poll with since=len(already read))."""
    job = _row(job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    return read_event_file(job.events_path, since) if job.events_path else []


def log_tail(job_id: str, n: int = 50) -> str:
    """The last ``n`` lines of the job process's stdout/stderr."""
    job = _row(job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    return _tail(job.log_path, n)


def _finish_cancel(job_id: str, grace_s: float) -> None:
    job = _row(job_id)
    deadline = time.time() + grace_s
    while time.time() < deadline and not _gone(job):
        time.sleep(0.2)
        job = _row(job_id)
    if not _gone(job):
        _signal(job, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and not _gone(job):
            time.sleep(0.1)
    from toolformer_app.training.trainer import latest_checkpoint

    ckpt = latest_checkpoint(job.job_dir)
    fields: dict[str, Any] = {"status": "cancelled", "finished": time.time()}
    if ckpt:
        fields["last_checkpoint"] = ckpt
    _update(job_id, only_if_status=ACTIVE, **fields)


def cancel_job(job_id: str, grace_s: float = 30.0, wait: bool = True) -> Job:
    """Stop a queued or running job: SIGTERM to its process group (it saves a checkpoint and exits),
    SIGKILL after ``grace_s``. Ends "cancelled" with its last checkpoint kept.

    With ``wait=False`` the escalation runs in a background thread and the call returns at once.
    """
    job = get_job(job_id)
    if not job.active:
        raise JobError(f"job {job_id} is {job.status}, not running")
    _update(job_id, cancel_requested=1)
    if not job.pid:  # queued and never spawned
        _update(job_id, only_if_status=ACTIVE, status="cancelled", finished=time.time())
        return get_job(job_id)
    _signal(job, signal.SIGTERM)
    if wait:
        _finish_cancel(job_id, grace_s)
    else:
        threading.Thread(target=_finish_cancel, args=(job_id, grace_s), daemon=True).start()
    return get_job(job_id)


def resume_job(job_id: str, *, launcher: list[str] | None = None) -> str:
    """Continue a cancelled, interrupted or failed job in a new process, from its last complete checkpoint
    (from the start if it never saved one). Same job id; events append to the same file."""
    job = prepare_resume(job_id)
    _spawn(job, resume=True, launcher=launcher)
    return job_id


def prepare_resume(job_id: str) -> Job:
    """Move a resumable job back to queued (refusing if it, or another job, is active); no spawning."""
    from toolformer_app.training.trainer import latest_checkpoint

    mark_interrupted()
    job = get_job(job_id)
    if job.active:
        raise JobError(f"job {job_id} is already {job.status}")
    if job.status == "succeeded":
        raise JobError(f"job {job_id} has finished; its model is in {job.out_dir}")
    ckpt = latest_checkpoint(job.job_dir)
    with _db(immediate=True) as conn:
        _active_conflict(conn, except_id=job_id)
        changed = conn.execute(
            "UPDATE jobs SET status = 'queued', error = NULL, finished = NULL, cancel_requested = 0, pid = NULL,"
            " pgid = NULL, proc_start = NULL, attempts = attempts + 1, last_checkpoint = ?, updated = ?"
            " WHERE id = ? AND status = ?",
            (ckpt, time.time(), job_id, job.status),
        ).rowcount
    if not changed:  # someone else resumed it between our read and the lock
        raise JobError(f"job {job_id} changed state meanwhile; try again")
    return get_job(job_id)


def _is_dead(job: Job) -> bool:
    if job.host and job.host != socket.gethostname():
        return False  # another machine's process: we cannot tell
    if job.pid:
        return not pid_alive(job.pid, job.proc_start)
    return job.status == "queued" and time.time() - job.created > QUEUED_TIMEOUT_S


def mark_interrupted() -> list[str]:
    """Mark jobs that claim to be queued/running but whose process is gone as interrupted (or cancelled,
    if a cancel was requested); returns their ids."""
    from toolformer_app.training.trainer import latest_checkpoint

    changed = []
    for job in _rows("status IN ('queued', 'running')", limit=1000):
        if not _is_dead(job):
            continue
        last = _tail(job.log_path, 1).strip()
        why = f"the job process (pid {job.pid}) ended without reporting" if job.pid else "the job process never started"
        ckpt = latest_checkpoint(job.job_dir)
        fields: dict[str, Any] = {
            "status": "interrupted", "finished": time.time(),
            "error": why + (f"; last log line: {last[:300]}" if last else "") + ("; resumable" if ckpt else ""),
        }
        if job.cancel_requested:  # it died of our own cancel (e.g. SIGKILL after the grace period)
            fields.update(status="cancelled", error=None)
        if ckpt:
            fields["last_checkpoint"] = ckpt
        if _update(job.id, only_if_status=ACTIVE, **fields):
            changed.append(job.id)
    return changed


def wait_job(job_id: str, timeout: float | None = None, poll_s: float = 0.5) -> Job:
    """Block until the job is no longer queued/running, or ``timeout`` seconds pass (then it is returned as is)."""
    deadline = None if timeout is None else time.time() + timeout
    while True:
        job = get_job(job_id)
        if not job.active or (deadline is not None and time.time() >= deadline):
            return job
        time.sleep(poll_s)
