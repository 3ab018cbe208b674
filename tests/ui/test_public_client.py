"""The public profile through gradio_client: a fresh API session can cancel and resume a job by id."""

from __future__ import annotations

import pytest


def test_cancel_and_resume_from_a_new_api_session_accept_any_existing_job_id(client, monkeypatch):
    from gradio_client import Client

    from toolformer_app.training import FinetuneConfig, jobs
    from toolformer_app.training.jobs import cancel_job, create_job, get_job
    from toolformer_app.ui import finetune

    monkeypatch.setenv("TOOLFORMER_ADMIN_TOKEN", "s3cret")
    spawned: list[str] = []
    monkeypatch.setattr(jobs, "_spawn", lambda job, resume, launcher: spawned.append(job.id))  # no real training
    job = create_job(FinetuneConfig(data=str(finetune.EXAMPLE_DATASET)))
    fresh = Client(client.src, verbose=False)  # no page load: the job list was never filled
    with pytest.raises(Exception, match="Wrong or missing admin token"):
        fresh.predict("wrong", job.id, api_name="/cancel_finetune")
    assert "Cancelling" in fresh.predict("s3cret", job.id, api_name="/cancel_finetune")
    assert get_job(job.id).status == "cancelled"
    assert "Resuming" in fresh.predict("s3cret", job.id, api_name="/resume_finetune")
    assert spawned == [job.id]
    cancel_job(job.id, grace_s=1)
    with pytest.raises(Exception, match="no job"):
        fresh.predict("s3cret", "ft-does-not-exist", api_name="/cancel_finetune")
