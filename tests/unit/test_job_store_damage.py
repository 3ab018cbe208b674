"""A damaged job store stops nothing and is never written to; a job's data outlives the dataset quotas."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from toolformer_app import config
from toolformer_app.training import FinetuneConfig, jobs

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "assets" / "examples" / "calculator_dataset.jsonl"


def _good_store() -> Path:
    jobs.create_job(FinetuneConfig(data=str(EXAMPLE), max_steps=1))
    with jobs._db() as conn:  # fold the WAL into the file, as a copy taken later would be
        conn.execute("SELECT 1")
    with sqlite3.connect(jobs.store_path()) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return jobs.store_path()


def _damage(kind: str) -> bytes:
    """Write one kind of damaged store; its bytes."""
    path = config.data_dir() / jobs.STORE_NAME
    if kind == "random":
        data = os.urandom(8192)
    elif kind == "header":
        data = b"SQLite format 3\x00" + os.urandom(8000)
    else:  # truncated: a real store cut inside its pages
        good = _good_store().read_bytes()
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
        jobs._SCHEMA_READY.clear()
        data = good[: len(good) // 2 + 100]
    path.write_bytes(data)
    jobs._SCHEMA_READY.clear()
    return data


@pytest.mark.parametrize("kind", ["random", "header", "truncated"])
def test_a_damaged_store_raises_one_line_naming_it_and_is_left_as_it_was(kind):
    data = _damage(kind)
    path = jobs.store_path()
    for call in (lambda: jobs.list_jobs(), lambda: jobs.get_job("x"), jobs.check_no_active_job,
                 lambda: jobs.create_job(FinetuneConfig(data=str(EXAMPLE)))):
        with pytest.raises(jobs.JobStoreError) as info:
            call()
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert str(path) not in info.value.public and "cannot be read" in info.value.public
    assert path.read_bytes() == data  # nothing written over it


@pytest.mark.parametrize("kind", ["random", "header", "truncated"])
def test_the_cli_prints_one_line_naming_the_store_and_exits_2(tmp_path, kind):
    data = _damage(kind)
    path = jobs.store_path()
    env = {**os.environ, "TOOLFORMER_DATA_DIR": str(config.data_dir())}
    for argv in (["jobs", "list"], ["jobs", "show", "ft-x"],
                 ["finetune", "--data", str(EXAMPLE), "--max-steps", "1", "--detach"]):
        proc = subprocess.run([sys.executable, "-m", "toolformer_app", *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and str(path) in lines[0], (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert path.read_bytes() == data


def test_an_empty_store_file_is_a_new_store():
    jobs.store_path().write_bytes(b"")
    jobs._SCHEMA_READY.clear()
    assert jobs.list_jobs() == []


def test_a_job_keeps_its_own_copy_of_a_dataset_the_quotas_may_prune(tmp_path):
    from toolformer_app.files import prune_dirs

    export = config.data_dir() / "datasets" / "export-20260101-000000-tau1.00" / "dataset.jsonl"
    export.parent.mkdir(parents=True)
    export.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    job = jobs.create_job(FinetuneConfig(data=str(export), max_steps=1))
    own = Path(job.config["data"])
    assert own.is_relative_to(Path(job.job_dir)) and own.read_bytes() == export.read_bytes()
    assert own.parent.name == export.parent.name  # the job lists show the same folder/name
    assert json.loads((Path(job.job_dir) / "config.json").read_text())["data"] == str(own)
    prune_dirs(export.parents[1], "export-", 0)  # every export gone, as 22 anonymous exports would do
    assert not export.exists() and own.is_file()
    outside = tmp_path / "mine.jsonl"  # a file outside datasets/ is used where it is
    outside.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    jobs._update(job.id, status="cancelled")
    assert jobs.create_job(FinetuneConfig(data=str(outside))).config["data"] == str(outside)
