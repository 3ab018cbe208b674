"""Where finetune datasets live in the data dir: listing them, and keeping an uploaded one.

Datasets are named by their path relative to the data dir, never by a server path. On a public
deployment the Filter tab's exports (``export-*``: C* of another session's texts) are not listed,
and only the newest ``keep`` uploads are kept, so anonymous visitors cannot fill the disk.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from toolformer_app.files import atomic_write_dir, prune_dirs

SKIPPED_DIRS = ("jobs", "finetuned", "models")  # job folders, adapters and the model cache hold no datasets


def list_datasets(root: str | Path, public: bool, limit: int = 50) -> list[Path]:
    """Every ``dataset.jsonl`` under ``root`` (newest first, at most ``limit``), hidden folders skipped."""
    root = Path(root)
    found = []
    for path in root.rglob("dataset.jsonl"):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIPPED_DIRS or any(p.startswith(".") for p in rel.parts):
            continue
        if public and any(p.startswith("export-") for p in rel.parts):
            continue
        found.append(path)
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


def store_upload(root: str | Path, content: str, keep: int | None = None) -> Path:
    """Write checked dataset text as ``root/datasets/upload-<time>-<hex>/dataset.jsonl``, all at once;
    with ``keep``, remove all but the newest ``keep`` uploads. Returns the dataset's path."""
    datasets = Path(root) / "datasets"
    out = datasets / f"upload-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    atomic_write_dir(out, {"dataset.jsonl": content})
    if keep is not None:
        prune_dirs(datasets, "upload-", keep)
    return out / "dataset.jsonl"
