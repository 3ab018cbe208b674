"""`generate --dataset`: a corpus in Hugging Face `datasets` form, sharded by rank.

The source is a local file (.parquet, .arrow, .jsonl/.json, .csv), a folder of such files, a folder written by
``Dataset.save_to_disk``, or a hub id (when online). With ``--streaming`` rows are read lazily, so a corpus larger
than memory works. Under ``accelerate launch`` each rank reads only its own rows: a map-style dataset is cut with
``Dataset.shard(world, rank, contiguous=False)`` (rank r takes rows r, r + world, ...: the same split as the
.txt/.jsonl corpora), a streamed one with ``datasets.distributed.split_dataset_by_node``.

Text ids are the ``id`` column when there is one, else ``row:N`` with N the row's index in the whole split, so a
sharded run merges to the same files as a single-process one and a rerun resumes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def add_arguments(parser: argparse.ArgumentParser, sources: argparse._MutuallyExclusiveGroup) -> None:
    """--dataset (one of generate's sources), --split, --text-field, --id-field, --streaming."""
    sources.add_argument("--dataset", metavar="PATH_OR_ID",
                         help="a `datasets` corpus: a .parquet/.arrow/.jsonl/.csv file, a folder of them, a "
                              "save_to_disk folder, or a hub id (online only)")
    parser.add_argument("--split", default="train", help="--dataset: the split to read (default: train)")
    parser.add_argument("--text-field", default="text", help="--dataset: the column holding the text (default: text)")
    parser.add_argument("--id-field", default="id",
                        help="--dataset: a column of text ids, used when present (default: id; else row:N)")
    parser.add_argument("--streaming", action="store_true",
                        help="--dataset: read rows lazily (corpora larger than memory)")


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) as `accelerate launch` / torchrun set them; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _cache_dir() -> str:
    from toolformer_app import config

    return str(config.data_dir() / "cache" / "datasets")  # the data dir is the only place the app writes


def open_dataset(source: str, split: str = "train", streaming: bool = False) -> Any:
    """The split as a ``datasets.Dataset`` (or ``IterableDataset`` when streaming). Raises ValueError, one line."""
    try:
        import datasets
    except ImportError:
        raise ValueError("--dataset needs the `datasets` package: pip install datasets") from None
    from huggingface_hub.constants import HF_HUB_OFFLINE

    path = Path(source).expanduser()
    try:
        if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise ValueError(f"{source} has no split {split!r}; it has {', '.join(loaded)}")
                loaded = loaded[split]
            return loaded.to_iterable_dataset() if streaming else loaded
        if path.exists():
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in FORMATS)
            kinds = {FORMATS.get(p.suffix) for p in files}
            if not files or None in kinds:
                raise ValueError(f"{source}: give a .parquet, .arrow, .jsonl, .json or .csv file, or a folder of them")
            if len(kinds) > 1:
                raise ValueError(f"{source} mixes formats ({', '.join(sorted(kinds))}); keep one per folder")
            # Local files make one split; it answers to the name given with --split.
            return datasets.load_dataset(kinds.pop(), data_files={split: [str(p) for p in files]}, split=split,
                                         streaming=streaming, cache_dir=_cache_dir())
        if HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ValueError(f"{source} is not a local file or folder, and the hub is offline (HF_HUB_OFFLINE=1); "
                             "give a path, or set TOOLFORMER_ONLINE=1 to read a hub id")
        return datasets.load_dataset(source, split=split, streaming=streaming, cache_dir=_cache_dir())
    except ValueError:
        raise
    except Exception as exc:  # datasets' own errors: a missing split, a bad file, no network
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"{source}: {type(exc).__name__}: {first}") from None


def load_dataset_texts(source: str, split: str = "train", text_field: str = "text", id_field: str = "id",
                       streaming: bool = False, limit: int | None = None, rank: int = 0, world: int = 1,
                       errors: list[str] | None = None) -> list[tuple[str, str]]:
    """This rank's (id, text) pairs of the first ``limit`` rows of the split. Raises ValueError, one line."""
    ds = open_dataset(source, split, streaming)
    columns = ds.column_names
    if columns is not None and text_field not in columns:
        raise ValueError(f"{source}: no column {text_field!r} (columns: {', '.join(columns)}); "
                         "choose one with --text-field")
    has_id = columns is not None and id_field in columns
    if limit:
        ds = ds.take(limit) if streaming else ds.select(range(min(limit, len(ds))))
    if streaming:
        from datasets.distributed import split_dataset_by_node

        # split_dataset_by_node hands out whole files when their count divides the world, else every world-th
        # row: only in the second case is the global row index known, so whole-file shards name rows by rank.
        by_row = world == 1 or ds.n_shards % world != 0
        ds = split_dataset_by_node(ds, rank=rank, world_size=world) if world > 1 else ds
    else:
        ds = ds.shard(num_shards=world, index=rank, contiguous=False) if world > 1 else ds
        by_row = True
    items: list[tuple[str, str]] = []
    for j, row in enumerate(ds):
        text = row.get(text_field)
        if columns is None and j == 0 and text_field not in row:
            raise ValueError(f"{source}: no column {text_field!r} (columns: {', '.join(row)}); "
                             "choose one with --text-field")
        n = rank + j * world if by_row else j
        if isinstance(text, str) and text.strip():
            key = str(row[id_field]) if has_id and row.get(id_field) is not None else (
                f"row:{n}" if by_row else f"rank{rank}:{j}")
            items.append((key, text))
        elif errors is not None:
            errors.append(f"row {n}: no non-empty {text_field!r} text")
    if not items and rank == 0 and world == 1:
        raise ValueError(f"{source} holds no text in column {text_field!r}")
    return items
