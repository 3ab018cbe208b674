"""The process side of finetune jobs: spawning a job process, telling whether it is alive, signalling
it, and the body of the job process itself (``python -m toolformer_app finetune --job-id ID``).

    the job process -> marks itself running (pid), appends events, records checkpoints, and ends the job
                       succeeded / failed (with the error) / cancelled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from toolformer_app import config
from toolformer_app.training.events import EventWriter
from toolformer_app.training.job_store import ACTIVE, Job, JobError, _row, _update
from toolformer_app.training.options import FinetuneConfig, TrainingInputError

_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process spawned: polled so they never linger as zombies
_CHILDREN_LOCK = threading.Lock()


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
    # The log is shown in the Finetune tab: the command is written by program name, not its server path.
    shown = [Path(cmd[0]).name, *cmd[1:]]
    try:
        log = open(job.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    except OSError as exc:
        _update(job.id, status="failed", error=f"could not write the job's log ({exc.strerror})", finished=time.time())
        raise JobError(f"could not write the job's log ({exc.strerror})") from None
    try:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(shown)}\n".encode())
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


def _tail(path: str | None, n: int) -> str:
    if not path or not Path(path).exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))  # enough for any sane n; never read a huge log whole
        data = f.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-n:]) if n > 0 else ""


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


def _begin(job_id: str, job: Job) -> bool:
    """Rank 0 marks the job running; False when it was cancelled before it started."""
    if job.cancel_requested or job.status == "cancelled":
        _update(job_id, only_if_status=ACTIVE, status="cancelled", finished=time.time())
        return False
    pgid = os.getpgid(0)
    _update(
        job_id, status="running", pid=os.getpid(),
        pgid=job.pgid or (pgid if pgid == os.getpid() else None),  # never signal a group we do not lead
        proc_start=_proc_start(os.getpid()), host=socket.gethostname(),
        started=job.started or time.time(), error=None, finished=None,
    )
    return True


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
    if main and not _begin(job_id, job):
        return 0

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
