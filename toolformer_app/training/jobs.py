"""Finetune jobs: a SQLite store in the data dir, and each job as its own process.

    start_job(cfg)  -> validates, records the job, spawns `python -m toolformer_app finetune --job-id ID`
                       in a new session (so cancel can signal its whole process group); one job at a time.
    the job process -> marks itself running (pid), appends events, records checkpoints, and ends the job
                       succeeded / failed (with the error) / cancelled.
    cancel_job      -> SIGTERM to the group: the job saves a checkpoint at the next step end and exits;
                       SIGKILL after a grace period. The last complete checkpoint is always kept.
    resume_job      -> a new process for the same job id, from the last complete checkpoint.
    mark_interrupted-> jobs marked active whose process is gone (app restart, kill -9, reboot) become
                       "interrupted"; list_jobs/get_job call it, and the app should at start.

The store is safe across processes: WAL mode, a busy timeout, one short transaction per call,
and BEGIN IMMEDIATE where a read decides a write (the one-running-job rule).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolformer_app import config
from toolformer_app.training.events import EventWriter, read_event_file
from toolformer_app.training.options import FinetuneConfig, TrainingInputError

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
STORE_NAME = "jobs.sqlite"
QUEUED_TIMEOUT_S = 120.0  # a queued job without a process after this long was never spawned

_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process spawned: polled so they never linger as zombies
_CHILDREN_LOCK = threading.Lock()
_SCHEMA_READY: set[str] = set()


class JobError(RuntimeError):
    """A job operation is not possible (unknown id, wrong state); the message is one line for the UI."""


class JobConflictError(JobError):
    """Another finetune is already queued or running."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    pid INTEGER,
    pgid INTEGER,
    proc_start REAL,
    host TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    updated REAL,
    out_dir TEXT,
    job_dir TEXT NOT NULL,
    last_checkpoint TEXT,
    last_step INTEGER,
    error TEXT,
    events_path TEXT,
    log_path TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    metrics TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""


@dataclass
class Job:
    """One row of the store. Times are seconds since the epoch; config/metrics are decoded JSON."""

    id: str
    kind: str
    status: str
    config: dict[str, Any]
    pid: int | None
    pgid: int | None
    proc_start: float | None
    host: str | None
    created: float
    started: float | None
    finished: float | None
    updated: float | None
    out_dir: str | None
    job_dir: str
    last_checkpoint: str | None
    last_step: int | None
    error: str | None
    events_path: str | None
    log_path: str | None
    cancel_requested: int
    attempts: int
    metrics: dict[str, Any] | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        d["config"] = json.loads(d["config"]) if d["config"] else {}
        d["metrics"] = json.loads(d["metrics"]) if d["metrics"] else None
        return cls(**d)


# ---------------------------------------------------------------- the store


def store_path() -> Path:
    return config.data_dir() / STORE_NAME


def jobs_root() -> Path:
    path = config.data_dir() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _db(immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """A short-lived connection, in one transaction (IMMEDIATE takes the write lock up front)."""
    path = str(store_path())
    if not os.path.exists(path):  # a new (or deleted) store gets its schema again
        _SCHEMA_READY.discard(path)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = NORMAL")
        if path not in _SCHEMA_READY:  # WAL is persistent in the file; the schema is created once
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            _SCHEMA_READY.add(path)
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def _update(job_id: str, only_if_status: tuple[str, ...] | None = None, **fields: Any) -> bool:
    """Set columns of one job (optionally only while its status is one of ``only_if_status``)."""
    fields["updated"] = time.time()
    for key in ("config", "metrics"):
        if key in fields and not isinstance(fields[key], str) and fields[key] is not None:
            fields[key] = json.dumps(fields[key], default=str)
    cols = ", ".join(f"{k} = ?" for k in fields)
    sql, params = f"UPDATE jobs SET {cols} WHERE id = ?", [*fields.values(), job_id]
    if only_if_status:
        sql += f" AND status IN ({', '.join('?' for _ in only_if_status)})"
        params += list(only_if_status)
    with _db(immediate=True) as conn:
        return conn.execute(sql, params).rowcount > 0


def _row(job_id: str) -> Job | None:
    with _db() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return Job._from_row(row) if row else None


def new_job_id() -> str:
    return time.strftime("ft-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _normalise(cfg: FinetuneConfig | dict[str, Any], job_id: str) -> FinetuneConfig:
    """Absolute paths, so the job process (another cwd, maybe another rank) finds the same files."""
    cfg = FinetuneConfig.from_dict(dict(cfg)) if isinstance(cfg, dict) else cfg
    data = str(Path(cfg.data).expanduser().resolve()) if cfg.data else ""
    out = cfg.out_dir or str(config.data_dir() / "finetuned" / job_id)
    return cfg.replace(data=data, out_dir=str(Path(out).expanduser().resolve()))


def _active_conflict(conn: sqlite3.Connection, except_id: str | None = None) -> None:
    row = conn.execute(
        "SELECT id, status FROM jobs WHERE status IN ('queued', 'running') AND id != ? ORDER BY created LIMIT 1",
        (except_id or "",),
    ).fetchone()
    if row:
        raise JobConflictError(
            f"finetune {row['id']} is already {row['status']}; wait for it or cancel it before starting another"
        )


def check_no_active_job() -> None:
    """JobConflictError if a finetune is queued or running: callers check before writing anything."""
    mark_interrupted()
    with _db() as conn:
        _active_conflict(conn)


def create_job(cfg: FinetuneConfig | dict[str, Any], job_id: str | None = None, kind: str = "finetune") -> Job:
    """Record a queued job (refusing if another is active) and prepare its directory. Does not spawn."""
    job_id = job_id or new_job_id()
    cfg = _normalise(cfg, job_id)
    job_dir = jobs_root() / job_id
    now = time.time()
    with _db(immediate=True) as conn:
        _active_conflict(conn)
        if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
            raise JobError(f"job {job_id} already exists")
        # Written only once the job is sure to be recorded (under the write lock): a refused
        # launch leaves no folder behind.
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        conn.execute(
            "INSERT INTO jobs (id, kind, status, config, created, updated, out_dir, job_dir, events_path, log_path, host)"
            " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, cfg.to_json(), now, now, cfg.out_dir, str(job_dir),
             str(job_dir / "events.jsonl"), str(job_dir / "log.txt"), socket.gethostname()),
        )
    return get_job(job_id)


# ---------------------------------------------------------------- processes


def _proc_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _reap(pid: int) -> bool:
    """True if ``pid`` is a child of ours that has exited (and is now reaped)."""
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            del _CHILDREN[pid]
            return True
    return False


def _reap_when_done(proc: subprocess.Popen) -> None:
    """Wait for ``proc`` in a daemon thread, so a finished job never lingers as a zombie (``<defunct>``)
    while nothing polls it (a succeeded job is not looked at again)."""
    def wait() -> None:
        try:
            proc.wait()
        except Exception:  # reaping is best effort; pid_alive and group_alive also poll
            return
        with _CHILDREN_LOCK:
            if _CHILDREN.get(proc.pid) is proc:
                del _CHILDREN[proc.pid]

    threading.Thread(target=wait, name=f"toolformer-reap-{proc.pid}", daemon=True).start()


def pid_alive(pid: int | None, proc_start: float | None = None) -> bool:
    """Is this process still running (not a zombie, and not another process that reused the pid)?"""
    if not pid:
        return False
    if _reap(pid):
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return not (proc_start and abs(proc.create_time() - proc_start) > 1.0)
    except ImportError:
        pass
    except Exception as exc:  # NoSuchProcess -> gone; AccessDenied -> it exists
        return type(exc).__name__ == "AccessDenied"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int | None) -> bool:
    """Is any process left in the process group (zombies of our own children are reaped first)?"""
    if not pgid:
        return False
    with _CHILDREN_LOCK:
        for pid, child in list(_CHILDREN.items()):
            if child.poll() is not None:
                del _CHILDREN[pid]
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg also succeeds while only zombies remain (children of someone else); look closer.
    try:
        import psutil

        return any(
            p.info["status"] != psutil.STATUS_ZOMBIE
            for p in psutil.process_iter(["pid", "status"])
            if _safe_pgid(p.info["pid"]) == pgid
        )
    except ImportError:
        return True


def _safe_pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _spawn(job: Job, resume: bool, launcher: list[str] | None) -> None:
    """Start the job process in its own session; output goes to the job's log file."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["TOOLFORMER_DATA_DIR"] = str(config.data_dir().resolve())
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = [*(launcher or [sys.executable]), "-m", "toolformer_app", "finetune", "--job-id", job.id]
    if resume:
        cmd.append("--resume")
    log = open(job.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=os.getcwd(), start_new_session=True, close_fds=True,
        )
    except OSError as exc:
        _update(job.id, status="failed", error=f"could not start the job process: {exc}", finished=time.time())
        raise JobError(f"could not start the job process: {exc}") from exc
    finally:
        log.close()
    with _CHILDREN_LOCK:
        _CHILDREN[proc.pid] = proc
    _reap_when_done(proc)
    # The job process overwrites pid with its own when it starts (it differs under a launcher);
    # pgid stays this new session's, which holds the launcher and every rank.
    _update(job.id, pid=proc.pid, pgid=proc.pid, proc_start=_proc_start(proc.pid), host=socket.gethostname())


# ---------------------------------------------------------------- public API


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
    with _db() as conn:
        rows = conn.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
    return [Job._from_row(r) for r in rows]


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


def _tail(path: str | None, n: int) -> str:
    if not path or not Path(path).exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))  # enough for any sane n; never read a huge log whole
        data = f.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-n:]) if n > 0 else ""


def _signal(job: Job, sig: int) -> None:
    try:
        if job.pgid:
            os.killpg(job.pgid, sig)
        elif job.pid:
            os.kill(job.pid, sig)
    except ProcessLookupError:
        pass


def _gone(job: Job) -> bool:
    return not pid_alive(job.pid, job.proc_start) and not (job.pgid and group_alive(job.pgid))


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

    with _db() as conn:
        rows = [Job._from_row(r) for r in conn.execute("SELECT * FROM jobs WHERE status IN ('queued', 'running')")]
    changed = []
    for job in rows:
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


# ---------------------------------------------------------------- the job process


def _is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _wait_for_row(job_id: str, timeout: float = 120.0) -> Job:
    deadline = time.time() + timeout
    while True:
        job = _row(job_id)
        if job is not None or time.time() > deadline:
            if job is None:
                raise JobError(f"no job {job_id!r}")
            return job
        time.sleep(0.5)


def run_job(job_id: str, resume: bool = False) -> int:
    """The body of `python -m toolformer_app finetune --job-id ID`: run the job and record its outcome.

    Returns the process exit code: 0 succeeded or cancelled, 2 bad input, 1 other failure.
    """
    from toolformer_app.models import ModelLoadError
    from toolformer_app.training.trainer import JobCancelled, TrainingError, latest_checkpoint, run_finetune

    main = _is_main_rank()
    job = _row(job_id) if main else _wait_for_row(job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    events = EventWriter(job.events_path, enabled=main)
    if main:
        if job.cancel_requested or job.status == "cancelled":
            _update(job_id, only_if_status=ACTIVE, status="cancelled", finished=time.time())
            return 0
        pgid = os.getpgid(0)
        _update(
            job_id, status="running", pid=os.getpid(),
            pgid=job.pgid or (pgid if pgid == os.getpid() else None),  # never signal a group we do not lead
            proc_start=_proc_start(os.getpid()), host=socket.gethostname(),
            started=job.started or time.time(), error=None, finished=None,
        )

    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():  # a second signal: stop now, without a checkpoint
            raise KeyboardInterrupt
        stop.set()
        events.emit("status", message=f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def on_checkpoint(path: str, step: int) -> None:
        _update(job_id, last_checkpoint=path, last_step=step)

    cfg = FinetuneConfig.from_dict(job.config)
    resume_from = latest_checkpoint(job.job_dir) if resume else None
    if resume and not resume_from:
        events.emit("status", message="no complete checkpoint to resume from: starting from the beginning")
    try:
        metrics = run_finetune(cfg, job.job_dir, job_id=job_id, events=events, resume_from=resume_from,
                               stop=stop, on_checkpoint=on_checkpoint if main else None)
    except (JobCancelled, KeyboardInterrupt) as exc:
        ckpt = latest_checkpoint(job.job_dir)
        step = exc.step if isinstance(exc, JobCancelled) else None
        if main:
            events.emit("cancelled", step=step, checkpoint=ckpt)
            _update(job_id, status="cancelled", finished=time.time(), last_checkpoint=ckpt, error=None)
        return 0
    except (TrainingInputError, TrainingError, ModelLoadError, JobError) as exc:
        return _fail(job_id, events, str(exc), 2 if isinstance(exc, TrainingInputError | ModelLoadError) else 1, main)
    except Exception as exc:
        traceback.print_exc()  # the full trace goes to the log; the store gets one line
        first = (str(exc).strip().splitlines() or [""])[0]
        return _fail(job_id, events, f"{type(exc).__name__}: {first}"[:500], 1, main)
    if main:
        events.emit("done", metrics=metrics, path=metrics.get("path"))
        _update(job_id, status="succeeded", finished=time.time(), metrics=metrics, error=None,
                last_step=metrics.get("steps"), out_dir=metrics.get("path"),
                last_checkpoint=latest_checkpoint(job.job_dir))  # None once cleaned up
    return 0


def _fail(job_id: str, events: EventWriter, message: str, code: int, main: bool) -> int:
    from toolformer_app.training.trainer import latest_checkpoint

    print(f"error: {message}", file=sys.stderr)
    if main:
        events.emit("error", message=message)
        job = _row(job_id)
        ckpt = latest_checkpoint(job.job_dir) if job else None
        _update(job_id, status="failed", finished=time.time(), error=message, last_checkpoint=ckpt)
    return code
