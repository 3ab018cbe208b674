"""Dataset storage in the data dir: what is listed, and an upload written whole and within its quota."""

from __future__ import annotations

import os
import time

from toolformer_app.training.storage import list_datasets, store_upload


def _dataset(path, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"text": "x"}\n')
    os.utime(path, (mtime, mtime))
    return path


def test_list_datasets_newest_first_skipping_jobs_models_hidden_and_public_exports(tmp_path):
    now = time.time()
    old = _dataset(tmp_path / "datasets" / "a" / "dataset.jsonl", now - 30)
    new = _dataset(tmp_path / "datasets" / "b" / "dataset.jsonl", now - 10)
    export = _dataset(tmp_path / "export-1" / "dataset.jsonl", now - 20)
    for skipped in ("jobs/j1", "finetuned/f1", "models/m", "datasets/.staging"):
        _dataset(tmp_path / skipped / "dataset.jsonl", now)
    assert list_datasets(tmp_path, public=False) == [new, export, old]
    assert list_datasets(tmp_path, public=True) == [new, old]
    assert list_datasets(tmp_path, public=False, limit=1) == [new]


def test_store_upload_writes_the_text_whole_and_keeps_the_newest(tmp_path):
    paths = []
    for i in range(3):
        paths.append(store_upload(tmp_path, f'{{"text": "{i}"}}\n', keep=2))
        os.utime(paths[-1].parent, (time.time() + i, time.time() + i))  # distinct ages within one second
    kept = sorted(p.parent.name for p in (tmp_path / "datasets").iterdir())
    assert len(kept) == 2 and paths[0].parent.name not in kept
    assert paths[-1].read_text() == '{"text": "2"}\n'
    assert not [p for p in (tmp_path / "datasets").iterdir() if p.name.startswith(".")]  # no staging left
