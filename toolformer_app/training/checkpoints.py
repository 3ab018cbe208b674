"""A finetune's checkpoints: the "latest" pointer a resume starts from (written only once a checkpoint is
complete), the step a checkpoint holds, and atomic writes.
"""

from __future__ import annotations

import os
from pathlib import Path

LATEST_NAME = "latest"  # a file in the job dir naming the newest complete checkpoint
CHECKPOINTS_DIR = "checkpoints"


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a synced temp file and a rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_complete(checkpoint: Path) -> bool:
    """Whether Trainer finished writing ``checkpoint`` (its trainer_state.json, written last, is there)."""
    return (checkpoint / "trainer_state.json").exists()


def latest_checkpoint(job_dir: str | Path) -> str | None:
    """The checkpoint a resume starts from: the "latest" pointer, else the newest complete checkpoint-N."""
    job_dir = Path(job_dir)
    pointer = job_dir / LATEST_NAME
    if pointer.exists():
        target = job_dir / CHECKPOINTS_DIR / pointer.read_text().strip()
        if target.is_dir() and is_complete(target):
            return str(target)
    found = []
    for d in (job_dir / CHECKPOINTS_DIR).glob("checkpoint-*"):
        suffix = d.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and is_complete(d):
            found.append((int(suffix), d))
    return str(max(found)[1]) if found else None


def checkpoint_step(path: str | None) -> int:
    """The step of a checkpoint-N dir (0 for none)."""
    if not path:
        return 0
    suffix = Path(path).name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
