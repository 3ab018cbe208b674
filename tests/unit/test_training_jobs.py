"""The job store and process control, with stand-in processes (no training): fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolformer_app import cli, config
from toolformer_app.training import jobs
from toolformer_app.training.events import EventWriter, read_event_file
from toolformer_app.training.options import FinetuneConfig, TrainingInputError

CALC = "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test."


@pytest.fixture()
def cfg(tmp_path) -> FinetuneConfig:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": CALC}) + "\n" + json.dumps({"text": CALC + " Again."}) + "\n")
    return FinetuneConfig(data=str(data), out_dir=str(tmp_path / "out"), max_steps=2)


def spawn(code: str) -> subprocess.Popen:
    """A stand-in job process in its own process group, like start_job makes them."""
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def as_running(job_id: str, proc: subprocess.Popen) -> None:
    with jobs._CHILDREN_LOCK:
        jobs._CHILDREN[proc.pid] = proc
    jobs._update(job_id, status="running", pid=proc.pid, pgid=proc.pid, proc_start=jobs._proc_start(proc.pid),
                 started=time.time())


def test_store_lives_in_the_data_dir_in_wal_mode(cfg):
    job = jobs.create_job(cfg)
    assert jobs.store_path() == config.data_dir() / "jobs.sqlite" and jobs.store_path().exists()
    with jobs._db() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert job.status == "queued" and job.kind == "finetune" and job.attempts == 1
    assert job.config["data"] == cfg.data and job.config["max_steps"] == 2
    assert Path(job.job_dir).is_dir() and job.events_path.endswith("events.jsonl")
    assert json.loads((Path(job.job_dir) / "config.json").read_text())["out_dir"] == cfg.out_dir


def test_default_out_dir_is_under_the_data_dir(cfg):
    job = jobs.create_job(cfg.replace(out_dir=""), job_id="abc")
    assert job.out_dir == str((config.data_dir() / "finetuned" / "abc").resolve())


def test_state_transitions_and_one_active_job(cfg):
    first = jobs.create_job(cfg)
    with pytest.raises(jobs.JobConflictError, match=f"{first.id} is already queued"):
        jobs.create_job(cfg)
    jobs._update(first.id, status="succeeded", finished=time.time())
    second = jobs.create_job(cfg)
    assert [j.id for j in jobs.list_jobs()] == [second.id, first.id]
    with pytest.raises(jobs.JobError, match="has finished"):
        jobs.resume_job(first.id)
    with pytest.raises(jobs.JobError, match="not running"):
        jobs.cancel_job(first.id)
    with pytest.raises(jobs.JobError, match="no job"):
        jobs.get_job("nope")


def test_cancel_a_queued_job_that_never_started(cfg):
    job = jobs.create_job(cfg)
    assert jobs.cancel_job(job.id).status == "cancelled"


def test_mark_interrupted_with_a_dead_pid(cfg):
    job = jobs.create_job(cfg)
    proc = spawn("pass")
    proc.wait()
    jobs._update(job.id, status="running", pid=proc.pid, pgid=proc.pid, proc_start=None)
    # A complete checkpoint on disk is recorded, so the UI offers a resume.
    ckpt = Path(job.job_dir) / "checkpoints" / "checkpoint-5"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    Path(job.log_path).write_text("loading\nTraining step 5\n")
    assert jobs.mark_interrupted() == [job.id]
    after = jobs.get_job(job.id)
    assert after.status == "interrupted" and after.finished
    assert after.last_checkpoint == str(ckpt) and "ended without reporting" in after.error
    assert "Training step 5" in after.error
    assert jobs.mark_interrupted() == []


def test_live_process_is_not_interrupted_but_a_zombie_or_reused_pid_is(cfg):
    job = jobs.create_job(cfg)
    proc = spawn("import time; time.sleep(30)")
    try:
        as_running(job.id, proc)
        assert jobs.mark_interrupted() == [] and jobs.get_job(job.id).status == "running"
        # The same pid with another start time is some other process: ours is gone.
        jobs._update(job.id, proc_start=jobs._proc_start(proc.pid) - 100)
        assert not jobs.pid_alive(proc.pid, jobs.get_job(job.id).proc_start)
        assert jobs.get_job(job.id).status == "interrupted"
    finally:
        proc.kill()
        proc.wait()


def test_queued_job_whose_process_died_at_startup(cfg):
    job = jobs.create_job(cfg)
    proc = spawn("raise SystemExit(3)")
    proc.wait()
    jobs._update(job.id, pid=proc.pid)
    assert jobs.get_job(job.id).status == "interrupted"


def test_queued_job_never_spawned_times_out(cfg, monkeypatch):
    job = jobs.create_job(cfg)
    assert jobs.mark_interrupted() == []
    monkeypatch.setattr(jobs, "QUEUED_TIMEOUT_S", -1.0)
    assert jobs.mark_interrupted() == [job.id]
    assert "never started" in jobs.get_job(job.id).error


def test_cancel_terminates_the_process_group(cfg):
    job = jobs.create_job(cfg)
    # The stand-in has a grandchild in its group: cancel must end the whole group.
    proc = spawn("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
                 " time.sleep(60)")
    as_running(job.id, proc)
    time.sleep(0.5)
    done = jobs.cancel_job(job.id, grace_s=10)
    assert done.status == "cancelled" and done.cancel_requested == 1
    assert not jobs.group_alive(proc.pid)


def test_cancel_escalates_to_sigkill(cfg):
    job = jobs.create_job(cfg)
    proc = spawn("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
                 " time.sleep(60)")
    as_running(job.id, proc)
    time.sleep(0.5)
    start = time.time()
    done = jobs.cancel_job(job.id, grace_s=1.0)
    assert done.status == "cancelled" and proc.poll() is not None and proc.returncode < 0
    assert time.time() - start < 10


def test_cancel_without_waiting_returns_at_once(cfg):
    job = jobs.create_job(cfg)
    proc = spawn("import time; time.sleep(60)")
    as_running(job.id, proc)
    jobs.cancel_job(job.id, grace_s=5, wait=False)
    assert jobs.wait_job(job.id, timeout=15).status == "cancelled"


def test_prepare_resume_requeues(cfg):
    job = jobs.create_job(cfg)
    jobs._update(job.id, status="cancelled", finished=time.time(), error="x", cancel_requested=1)
    other = FinetuneConfig.from_dict(job.config)
    again = jobs.prepare_resume(job.id)
    assert again.status == "queued" and again.attempts == 2 and again.error is None and not again.cancel_requested
    with pytest.raises(jobs.JobError, match="already queued"):
        jobs.prepare_resume(job.id)
    jobs._update(job.id, status="interrupted")
    blocker = jobs.create_job(other, job_id="blocker")
    with pytest.raises(jobs.JobConflictError, match="blocker"):
        jobs.resume_job(job.id)
    assert blocker.status == "queued"


def test_start_job_validates_before_recording(cfg, tmp_path):
    with pytest.raises(TrainingInputError, match="does not exist"):
        jobs.start_job(cfg.replace(data=str(tmp_path / "missing.jsonl")))
    with pytest.raises(TrainingInputError, match="learning rate"):
        jobs.start_job(cfg.replace(learning_rate=-1.0))
    with pytest.raises(TrainingInputError, match="model"):
        jobs.start_job(cfg.replace(model="no-such-model"))
    assert jobs.list_jobs() == []


def test_events_and_log_tail(cfg):
    job = jobs.create_job(cfg)
    writer = EventWriter(job.events_path)
    writer.emit("progress", step=1, loss=2.5)
    writer.emit("eval", step=1, eval_loss=2.0, perplexity=7.39)
    with open(job.events_path, "a") as f:
        f.write('{"type": "progress", "st')  # a line still being written
    assert [e["type"] for e in jobs.read_events(job.id)] == ["progress", "eval"]
    assert [e["type"] for e in jobs.read_events(job.id, since=1)] == ["eval"]
    assert read_event_file(Path(job.job_dir) / "none.jsonl") == []
    Path(job.log_path).write_text("\n".join(f"line {i}" for i in range(100)) + "\n")
    assert jobs.log_tail(job.id, 3) == "line 97\nline 98\nline 99"


def test_job_process_failure_is_recorded(cfg, monkeypatch):
    """run_job in-process with input that slipped past start_job (the data vanished): failed, with the error."""
    job = jobs.create_job(cfg.replace(data=cfg.data + ".gone"))
    monkeypatch.setattr("signal.signal", lambda *a: None)
    assert jobs.run_job(job.id) == 2
    after = jobs.get_job(job.id)
    assert after.status == "failed" and "does not exist" in after.error and after.pid == os.getpid()
    assert jobs.read_events(job.id)[-1]["type"] == "error"


def test_cli_finetune_reports_bad_input_in_one_line(cfg, tmp_path, capsys):
    code = cli.main(["finetune", "--data", str(tmp_path / "missing.jsonl"), "--max-steps", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: data file") and "\n" not in err
    assert cli.main(["finetune", "--data", cfg.data, "--lr", "0"]) == 2
    assert "learning rate must be > 0" in capsys.readouterr().err


def test_cli_jobs_list_and_show(cfg, capsys):
    job = jobs.create_job(cfg)
    assert cli.main(["jobs", "list"]) == 0
    assert job.id in capsys.readouterr().out
    assert cli.main(["jobs", "show", job.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job"]["status"] == "queued"
    assert cli.main(["jobs", "cancel", job.id]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert cli.main(["jobs", "show", "nope"]) == 2


def test_a_finished_job_process_is_reaped_without_being_polled(cfg):
    """Nothing polls a succeeded job again: its process must not stay a zombie until the app exits."""
    import psutil

    job = jobs.create_job(cfg)
    jobs._spawn(job, resume=False, launcher=[sys.executable, "-c", "pass"])  # exits at once
    pid = jobs.get_job(job.id).pid
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            break
        assert time.time() < deadline - 0.1 or status != psutil.STATUS_ZOMBIE
        time.sleep(0.1)
    else:
        pytest.fail(f"job process {pid} was never reaped (status {status})")
    assert pid not in jobs._CHILDREN
