"""Finetune tab handlers: the guard, datasets, one job at a time, and the live view from events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gradio as gr
import pytest

from toolformer_app.ui import finetune


@pytest.fixture
def quiet(monkeypatch):
    said = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: said.append(msg))
    monkeypatch.setattr(gr, "Info", lambda msg, *a, **k: said.append(msg))
    return said


def test_the_admin_token_guards_launching_when_it_is_set(monkeypatch):
    monkeypatch.setenv("TOOLFORMER_ADMIN_TOKEN", "s3cret")
    assert "admin token" in finetune.guard_note()
    with pytest.raises(gr.Error, match="admin token"):
        finetune.check_token("wrong")
    with pytest.raises(gr.Error, match="admin token"):
        finetune.check_token("")
    finetune.check_token("s3cret")


def test_a_space_without_a_token_says_how_to_enable_finetuning(monkeypatch):
    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    assert "TOOLFORMER_ADMIN_TOKEN" in finetune.guard_note() and "disabled" in finetune.guard_note()
    with pytest.raises(gr.Error, match="TOOLFORMER_ADMIN_TOKEN"):
        finetune.check_token(None)


def test_locally_without_a_token_launching_is_open(monkeypatch):
    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    finetune.check_token(None)
    assert "TOOLFORMER_ADMIN_TOKEN" in finetune.guard_note()


def test_dataset_choices_list_the_current_run_the_example_and_earlier_datasets():
    from toolformer_app import config

    earlier = config.data_dir() / "datasets" / "run-a" / "dataset.jsonl"
    earlier.parent.mkdir(parents=True)
    shutil.copyfile(finetune.EXAMPLE_DATASET, earlier)
    values = [v for _, v in finetune.dataset_choices()]
    assert values[0] == finetune.CURRENT and "datasets/run-a/dataset.jsonl" in values
    assert finetune.EXAMPLE_ID in values and not any(v.startswith("/") for v in values)  # ids, not server paths
    assert finetune.resolve_dataset("datasets/run-a/dataset.jsonl", None, 0.3) == str(earlier.resolve())
    assert finetune.resolve_dataset(finetune.EXAMPLE_ID, None, 0.3) == str(finetune.EXAMPLE_DATASET)


def test_on_a_public_deployment_anonymous_uploads_are_not_stored(tmp_path, monkeypatch, quiet):
    from toolformer_app import config

    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    monkeypatch.setenv("TOOLFORMER_ADMIN_TOKEN", "s3cret")
    src = tmp_path / "mine.jsonl"
    shutil.copyfile(finetune.EXAMPLE_DATASET, src)
    with pytest.raises(gr.Error, match="admin token"):
        finetune.upload_dataset(str(src), None)
    assert not (config.data_dir() / "datasets").exists()
    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN")
    with pytest.raises(gr.Error, match="disabled"):  # no token set: finetuning and its uploads are off
        finetune.upload_dataset(str(src), "")
    assert not (config.data_dir() / "datasets").exists()


def test_public_uploads_with_the_token_are_capped_and_exports_of_others_are_not_listed(tmp_path, monkeypatch,
                                                                                       quiet):
    from tests.ui.helpers import run
    from toolformer_app import config
    from toolformer_app.ui import filter as loss_filter

    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    monkeypatch.setenv("TOOLFORMER_ADMIN_TOKEN", "s3cret")
    monkeypatch.setattr(finetune, "MAX_PUBLIC_UPLOADS", 2)
    src = tmp_path / "mine.jsonl"
    shutil.copyfile(finetune.EXAMPLE_DATASET, src)
    values = [finetune.upload_dataset(str(src), "s3cret")["value"] for _ in range(3)]
    kept = sorted(p.parent.name for p in (config.data_dir() / "datasets").glob("upload-*/dataset.jsonl"))
    assert len(kept) == 2 and all(not v.startswith("/") for v in values)
    exported = Path(loss_filter.export_dataset(run(), 0.3))
    listed = [v for _, v in finetune.dataset_choices()]
    assert exported.parent.name.startswith("export-") and not any("export-" in v for v in listed)
    with pytest.raises(gr.Error, match="from the list"):  # no server path is taken on a public deployment
        finetune.resolve_dataset(str(exported), None, 0.3)
    with pytest.raises(gr.Error, match="from the list"):
        finetune.resolve_dataset("../../etc/dataset.jsonl", None, 0.3)


def test_an_uploaded_dataset_is_checked_copied_and_its_bad_lines_reported(tmp_path, quiet):
    src = tmp_path / "mine.jsonl"
    good = finetune.EXAMPLE_DATASET.read_text().splitlines()
    src.write_text("\n".join([good[0], "{oops", good[1]]) + "\n")
    update = finetune.upload_dataset(str(src))
    from toolformer_app import config

    assert (config.data_dir() / update["value"]).is_file() and not Path(update["value"]).is_absolute()
    assert any("malformed" in s and "2" in s for s in quiet)


def test_binary_or_callless_uploads_are_refused_with_one_line(tmp_path):
    blob = tmp_path / "blob.jsonl"
    blob.write_bytes(b"\x00\xff" * 50)
    with pytest.raises(gr.Error, match="binary"):
        finetune.upload_dataset(str(blob))
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"text": "no calls here"}) + "\n")
    with pytest.raises(gr.Error, match="API call") as exc:
        finetune.upload_dataset(str(plain))
    assert "\n" not in str(exc.value)


def _launch(dataset: str, **over):
    args = dict(token="", model="smollm2-135m", dataset=dataset, run=None, tau_f=0.3, lora=False, learning_rate=0,
                batch_size=2, grad_accum=1, epochs=1, max_steps=2, max_length=32, eval_every=2, eval_fraction=0.1)
    args.update(over)
    return finetune.launch(**args)


def test_a_second_launch_is_refused_with_a_clear_message(monkeypatch):
    from toolformer_app.training import FinetuneConfig
    from toolformer_app.training.jobs import create_job

    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    running = create_job(FinetuneConfig(data=str(finetune.EXAMPLE_DATASET)))  # queued: counts as active
    with pytest.raises(gr.Error, match="Only one finetune runs at a time") as exc:
        _launch(str(finetune.EXAMPLE_DATASET))
    assert running.id in str(exc.value)


def test_the_current_run_needs_candidates_before_launching(monkeypatch):
    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    with pytest.raises(gr.Error, match="Nothing to export"):
        _launch(finetune.CURRENT)


def test_bad_hyperparameters_are_a_one_line_error(monkeypatch):
    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    with pytest.raises(gr.Error, match="learning rate") as exc:
        _launch(str(finetune.EXAMPLE_DATASET), learning_rate=1.0)
    assert "\n" not in str(exc.value)


def test_the_job_view_shows_progress_eta_loss_and_perplexity_from_events():
    from toolformer_app.training import FinetuneConfig
    from toolformer_app.training.jobs import create_job

    job = create_job(FinetuneConfig(data=str(finetune.EXAMPLE_DATASET)))
    events = [
        {"type": "start", "step": 0, "total_steps": 4},
        {"type": "eval", "step": 0, "eval_loss": 3.7, "perplexity": 40.4},
        {"type": "progress", "step": 1, "total_steps": 4, "loss": 3.5, "eta_s": 90, "tokens_per_s": 20},
        {"type": "progress", "step": 2, "total_steps": 4, "loss": 3.2, "eta_s": 45, "tokens_per_s": 21},
        {"type": "eval", "step": 2, "eval_loss": 3.4, "perplexity": 30.0},
    ]
    Path(job.events_path).write_text("".join(json.dumps(e) + "\n" for e in events))
    status, bar, curve, ppl, log = finetune.job_view(job.id)
    assert job.id in status and "40.4 (step 0) → 30.0 (step 2)" in status
    assert "step 2/4" in bar and "ETA 45 s" in bar and "width:50.0%" in bar
    assert curve["step"].tolist() == [1, 2] and curve["loss"].dtype.kind == "f" and curve["step"].dtype.kind == "i"
    assert ppl["step"].tolist() == [0, 2] and ppl["perplexity"].tolist() == [40.4, 30.0]
    choice, known, table = finetune.on_load()
    assert choice["value"] == job.id and table.iloc[0]["job"] == job.id


def test_the_device_line_says_cpu_with_a_measured_step_time(monkeypatch):
    import toolformer_app.models as models

    monkeypatch.setattr(models, "pick_device", lambda device=None: "cpu")
    from toolformer_app.training import estimate

    monkeypatch.setattr(estimate, "measure_cpu_step", lambda name: 0.5)
    line = finetune.device_line("smollm2-135m", 4, 256, 1, False)
    expected = estimate.step_estimate(0.5, 4, 256, 1, False)
    assert line.startswith("**CPU: this will be slow (about") and f"about {expected:.0f} s per step" in line
    assert estimate.step_estimate(1.0, 2, 256, 1, False) == pytest.approx(estimate.step_estimate(1.0, 1, 512, 1, False))


def _run_with_call_free_texts(n_plain: int) -> dict:
    """The helpers' run (one text with kept calls) plus ``n_plain`` texts of the run that kept no call."""
    from tests.ui.helpers import run

    r = run()
    r["texts"] += [{"text_id": f"p{i}", "text": f"Plain text number {i} has no call.", "tokens": [],
                    "char_starts": [], "position_scores": {}, "counts": {}} for i in range(n_plain)]
    return r


def test_the_current_run_trains_on_c_star_mixed_with_its_call_free_texts_at_the_chosen_ratio(quiet):
    """The Finetune tab's current run is the mix (as the recipe's), not C* alone."""
    from toolformer_app.recipe import RecipeConfig

    r = _run_with_call_free_texts(6)

    def rows(path: str) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines()]

    mixed = rows(finetune.resolve_dataset(finetune.CURRENT, r, 0.3, True, 2))
    with_calls = [x for x in mixed if x["calls"]]
    plain = [x for x in mixed if not x["calls"]]
    assert len(with_calls) == 1 and len(plain) == 2  # 2 call-free texts per text with calls
    assert all(x["text"] == x["original"] and x["id"].startswith("p") for x in plain)
    meta = json.loads((Path(finetune.resolve_dataset(finetune.CURRENT, r, 0.3, True, 4)).parent
                       / "meta.json").read_text())
    assert (meta["with_calls"], meta["plain"], meta["plain_ratio"]) == (1, 4, 4.0)
    # by default: mixed, at the recipe's ratio (at most the 6 call-free texts there are)
    assert finetune.default_plain_ratio() == RecipeConfig.plain_ratio
    default = rows(finetune.resolve_dataset(finetune.CURRENT, r, 0.3))
    assert sum(not x["calls"] for x in default) == min(6, round(RecipeConfig.plain_ratio))
    # unticked: C* alone
    assert all(x["calls"] for x in rows(finetune.resolve_dataset(finetune.CURRENT, r, 0.3, False, 2)))
    with pytest.raises(gr.Error, match="0 or more"):
        finetune.resolve_dataset(finetune.CURRENT, r, 0.3, True, -1)


def test_launching_on_the_current_run_passes_the_mix_to_the_job(monkeypatch, quiet):
    from toolformer_app import training

    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    started = []
    monkeypatch.setattr(training, "start_job", lambda cfg: started.append(cfg) or "ft-test")
    monkeypatch.setattr(finetune, "job_choices", lambda: [("ft-test", "ft-test")])
    _launch(finetune.CURRENT, run=_run_with_call_free_texts(5), mix=True, plain_ratio=3)
    rows = [json.loads(line) for line in Path(started[0].data).read_text().splitlines()]
    assert (sum(bool(x["calls"]) for x in rows), sum(not x["calls"] for x in rows)) == (1, 3)
