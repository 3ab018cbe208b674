"""The finetune job store: one SQLite file in the data dir (``jobs.sqlite``), one row per job.

The store is safe across processes: WAL mode, a busy timeout, one short transaction per call, and
BEGIN IMMEDIATE where a read decides a write (the one-running-job rule).

A store that cannot be read (not a database, a torn header, a truncated file) raises JobStoreError,
one line naming the file, and is never written to: the schema is only created in a file that is
empty or passes SQLite's own check.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolformer_app import config
from toolformer_app.training.options import FinetuneConfig

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
STORE_NAME = "jobs.sqlite"
JOB_DATA = "data"  # the job's own copy of a dataset from the data dir's datasets/ (quotas prune those)

_SCHEMA_READY: set[str] = set()
_HEADER = b"SQLite format 3\x00"


class JobError(RuntimeError):
    """A job operation is not possible (unknown id, wrong state); the message is one line for the UI."""


class JobConflictError(JobError):
    """Another finetune is already queued or running."""


class JobStoreError(JobError):
    """The job store file cannot be read. ``str()`` names the file (for the CLI); ``public`` does not."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), " ".join(str(reason).split())[:200]
        super().__init__(f"{self.path}: the job store cannot be read ({self.reason}); "
                         "move the file aside to start an empty store")

    @property
    def public(self) -> str:
        return (f"The job store ({STORE_NAME} in the data dir) cannot be read ({self.reason}): finetune jobs are "
                "unavailable until the operator moves the file aside.")


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


def store_path() -> Path:
    return config.data_dir() / STORE_NAME


def jobs_root() -> Path:
    path = config.data_dir() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_existing(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file that holds something but is not a sound job store, before anything writes to it."""
    size = os.path.getsize(path) if os.path.exists(path) else 0
    if size == 0:
        return  # a new store
    with open(path, "rb") as f:
        if f.read(len(_HEADER)) != _HEADER:
            raise JobStoreError(path, "file is not a database")
    conn.execute("PRAGMA query_only = ON")
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise JobStoreError(path, f"database disk image is malformed: {result}")
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone():
            raise JobStoreError(path, "it holds no jobs table")
    finally:
        conn.execute("PRAGMA query_only = OFF")


@contextlib.contextmanager
def _db(immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """A short-lived connection, in one transaction (IMMEDIATE takes the write lock up front).

    Any SQLite failure that means the file is damaged becomes JobStoreError (one line, naming it)."""
    path = str(store_path())
    if not os.path.exists(path):  # a new (or deleted) store gets its schema again
        _SCHEMA_READY.discard(path)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise JobStoreError(path, str(exc)) from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        if path not in _SCHEMA_READY:  # WAL is persistent in the file; the schema is created once
            _check_existing(conn, path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            _SCHEMA_READY.add(path)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise JobError(f"the job store is busy ({exc}); try again") from None
        raise JobStoreError(path, str(exc)) from None
    except sqlite3.DatabaseError as exc:
        _SCHEMA_READY.discard(path)
        raise JobStoreError(path, str(exc)) from None
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


def _rows(where: str = "", limit: int = 100) -> list[Job]:
    """Jobs, newest first; ``where`` is a fixed SQL condition (never user text)."""
    sql = "SELECT * FROM jobs" + (f" WHERE {where}" if where else "") + " ORDER BY created DESC LIMIT ?"
    with _db() as conn:
        return [Job._from_row(r) for r in conn.execute(sql, (limit,)).fetchall()]


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


def _own_copy(cfg: FinetuneConfig, job_dir: Path) -> FinetuneConfig:
    """A dataset inside the data dir's datasets/ (exports and uploads, which quotas prune) is copied into the
    job's folder, so a cancelled job resumes on its data whatever the quotas removed since. The copy keeps
    the dataset's folder name (``data/export-…/dataset.jsonl``), which is how the job lists show it."""
    if not cfg.data:
        return cfg
    data = Path(cfg.data)
    datasets = (config.data_dir() / "datasets").resolve()
    if not data.is_relative_to(datasets) or not data.is_file():
        return cfg
    copy = job_dir / JOB_DATA / data.parent.name / data.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data, copy)
    return cfg.replace(data=str(copy))


def create_job(cfg: FinetuneConfig | dict[str, Any], job_id: str | None = None, kind: str = "finetune") -> Job:
    """Record a queued job (refusing if another is active) and prepare its directory. Does not spawn."""
    from toolformer_app.files import atomic_write_json

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
        try:
            cfg = _own_copy(cfg, job_dir)
            atomic_write_json(job_dir / "config.json", cfg.to_dict())
        except OSError:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        conn.execute(
            "INSERT INTO jobs (id, kind, status, config, created, updated, out_dir, job_dir, events_path, log_path, host)"
            " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, cfg.to_json(), now, now, cfg.out_dir, str(job_dir),
             str(job_dir / "events.jsonl"), str(job_dir / "log.txt"), socket.gethostname()),
        )
    job = _row(job_id)
    if job is None:  # removed by another process in between
        raise JobError(f"no job {job_id!r}")
    return job
