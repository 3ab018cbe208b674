"""The corpus: every text the pipeline reads comes through here, as (id, text) with its metadata.

Sources, each keeping its ids and metadata (``metas``: {"date": ISO date or None, "title", "article"}):
- a file: a .txt (paragraphs split by blank lines, else one text per line; ids ``line:N`` name the line
  where a text starts) or a .jsonl (field "text", optional "id", "date", "title");
- an upload: the same file readers, with a size limit, or typed text split into paragraphs;
- the embedded corpora: the wiki extracts cut into passages (training articles only, ``pipeline.split``),
  and the seeded arithmetic, dated and foreign corpora;
- a ``datasets`` corpus: local .parquet/.arrow/.jsonl/.csv files, a ``save_to_disk`` folder or a hub id,
  this rank's rows only (``load_dataset_texts``).

A text without metadata is taken as written now (the Calendar answers with today's date).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

MAX_PASSAGE_WORDS = 120
SEEDED_LIMIT = 1000  # texts of a seeded corpus when no limit is given
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# -- passages and paragraphs ---------------------------------------------------------------------

def split_passage(text: str, max_words: int = MAX_PASSAGE_WORDS) -> list[str]:
    """Split a long extract into passages of whole sentences, each at most ~max_words words."""
    out, cur = [], []
    for s in _SENTENCE_END.split(text.strip()):
        if cur and len(" ".join(cur + [s]).split()) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur.append(s)
    if cur:
        out.append(" ".join(cur))
    return [p for p in out if p.strip()]


def paragraphs(content: str) -> list[tuple[int, str]]:
    """(line where it starts, paragraph) for each non-empty block between blank lines.

    Windows line ends count as line ends, so a file and the same text typed into a box split alike.
    """
    content = content.replace("\r\n", "\n")
    out, line = [], 1
    for block in content.split("\n\n"):
        if block.strip():
            out.append((line + block[: len(block) - len(block.lstrip())].count("\n"), block.strip()))
        line += block.count("\n") + 2
    return out


def split_paragraphs(text: str) -> list[str]:
    """The texts of a text box: paragraphs separated by blank lines (as a .txt file is read)."""
    return [p for _, p in paragraphs(text)]


def typed_texts(text: str) -> list[tuple[str, str]]:
    """(id, text) of typed text: one per paragraph, numbered from 1."""
    return [(str(n), t) for n, t in enumerate(split_paragraphs(text), 1)]


# -- files and the embedded corpora --------------------------------------------------------------

def wiki_passages(limit: int | None = None, metas: dict[str, dict] | None = None) -> list[tuple[str, str]]:
    """(id, passage) of the training articles' extracts, cut into passages. Ids keep the extract's index in
    the file (``wiki:N``, then ``wiki:N.J``); ``metas`` gets each passage's article, so that WikiSearch and
    QA never retrieve it while annotating it (leave-one-out)."""
    from toolformer_app.pipeline.split import training_wiki_items

    items: list[tuple[str, str]] = []
    for n, title, extract in training_wiki_items():
        for j, passage in enumerate(split_passage(extract)):
            text_id = f"wiki:{n}.{j}" if j else f"wiki:{n}"
            items.append((text_id, passage))
            if metas is not None:
                metas[text_id] = {"date": None, "article": n, "title": title}
            if limit and len(items) >= limit:
                return items
    return items


def first_wiki_passages() -> list[tuple[str, str]]:
    """(``wiki:N``, first passage) of every training article: the encyclopedic call-free texts of a mix."""
    from toolformer_app.pipeline.split import training_wiki_items

    return [(f"wiki:{n}", split_passage(extract)[0]) for n, _, extract in training_wiki_items()]


def seeded_texts(kind: str, limit: int | None = None,
                 metas: dict[str, dict] | None = None) -> list[tuple[str, str]]:
    """A seeded corpus: "arithmetic", "steps" (arithmetic carried by words, in one to three steps), "dated"
    (each text with its creation date), "foreign" or "countries" (statements for QA, ``pipeline.countries``)."""
    meta_out = metas if metas is not None else {}
    n = limit or SEEDED_LIMIT
    if kind == "dated":
        from toolformer_app.pipeline.dated import dated_texts

        docs = dated_texts(n)
        meta_out.update({d.id: {"date": d.date.isoformat()} for d in docs})
        return [(d.id, d.text) for d in docs]
    if kind == "arithmetic":
        from toolformer_app.pipeline.arithmetic import arithmetic_texts

        items = arithmetic_texts(n)
    elif kind == "steps":
        from toolformer_app.pipeline.arithmetic import steps_texts

        items = steps_texts(n)
    elif kind == "foreign":
        from toolformer_app.pipeline.foreign import foreign_texts

        items = foreign_texts(n)
    elif kind == "countries":
        from toolformer_app.pipeline.countries import country_texts

        items = country_texts(limit)
    else:
        raise ValueError(f"no seeded corpus {kind!r} (arithmetic, steps, dated, foreign, countries)")
    meta_out.update({i: {"date": None} for i, _ in items})
    return items


def file_texts(input_path: str | Path, errors: list[str] | None = None, metas: dict[str, dict] | None = None,
               max_bytes: int | None = None) -> list[tuple[str, str]]:
    """(id, text) of a .txt or .jsonl file (an upload too: ``max_bytes`` bounds it); ValueError, one line,
    when it is missing, binary, too large or holds no text. Malformed .jsonl lines go to ``errors``."""
    from toolformer_app.files import read_jsonl_numbered, read_text_file

    path = Path(input_path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    content = read_text_file(path, max_bytes)  # every byte checked: binary or non-UTF-8 files are refused
    meta_out = metas if metas is not None else {}
    items: list[tuple[str, str]] = []
    if path.suffix.lower() == ".jsonl":
        for n, row in read_jsonl_numbered(path, errors):  # n: the line in the file, for ids and messages
            text = row.get("text")
            if isinstance(text, str) and text.strip():
                items.append((str(row.get("id", f"line:{n}")), text))
                meta = {k: row[k] for k in ("date", "title") if k in row}
                if meta:
                    meta_out[items[-1][0]] = meta
            elif errors is not None:
                errors.append(f"line {n}: no non-empty \"text\" field")
    elif "\n\n" in content.replace("\r\n", "\n"):  # paragraphs; each id names the line where one starts
        items = [(f"line:{line}", text) for line, text in paragraphs(content)]
    else:
        items = [(f"line:{n}", b.strip()) for n, b in enumerate(content.splitlines(), 1) if b.strip()]
    if not items:
        raise ValueError(f"{path} holds no text")
    return items


def load_texts(input_path: str | None = None, wiki: bool = False, limit: int | None = None,
               errors: list[str] | None = None, arithmetic: bool = False, dated: bool = False,
               foreign: bool = False, metas: dict[str, dict] | None = None,
               max_bytes: int | None = None, steps: bool = False, countries: bool = False) -> list[tuple[str, str]]:
    """(id, text) pairs from a file (``file_texts``), the wiki passages (``wiki_passages``) or a seeded
    corpus (``seeded_texts``): the sources of `generate` and of the Annotate tab's uploads.

    ``metas`` (optional) receives each text's metadata: {"date": ISO date or None (unknown)}, and for
    a wiki passage its article. ``max_bytes`` bounds an input file (uploads).
    """
    for kind, wanted in (("arithmetic", arithmetic), ("steps", steps), ("foreign", foreign), ("dated", dated),
                         ("countries", countries)):
        if wanted:
            return seeded_texts(kind, limit, metas)
    if wiki:
        return wiki_passages(limit, metas)
    if not input_path:
        raise ValueError("give --input FILE, --wiki or --arithmetic")
    items = file_texts(input_path, errors, metas, max_bytes)
    return items[:limit] if limit else items


# -- `datasets` corpora --------------------------------------------------------------------------

FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) as `accelerate launch` / torchrun set them; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _datasets_cache_dir() -> str:
    from toolformer_app import config

    return str(config.data_dir() / "cache" / "datasets")  # the data dir is the only place the app writes


def open_dataset(source: str, split: str = "train", streaming: bool = False) -> Any:
    """The split as a ``datasets.Dataset`` (or ``IterableDataset`` when streaming). Raises ValueError, one line.

    The source is a local file (.parquet, .arrow, .jsonl/.json, .csv), a folder of such files, a folder
    written by ``Dataset.save_to_disk``, or a hub id (when online).
    """
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
                                         streaming=streaming, cache_dir=_datasets_cache_dir())
        if HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ValueError(f"{source} is not a local file or folder, and the hub is offline (HF_HUB_OFFLINE=1); "
                             "give a path, or set TOOLFORMER_ONLINE=1 to read a hub id")
        return datasets.load_dataset(source, split=split, streaming=streaming, cache_dir=_datasets_cache_dir())
    except ValueError:
        raise
    except Exception as exc:  # datasets' own errors: a missing split, a bad file, no network
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"{source}: {type(exc).__name__}: {first}") from None


def load_dataset_texts(source: str, split: str = "train", text_field: str = "text", id_field: str = "id",
                       streaming: bool = False, limit: int | None = None, rank: int = 0, world: int = 1,
                       errors: list[str] | None = None) -> list[tuple[str, str]]:
    """This rank's (id, text) pairs of the first ``limit`` rows of the split. Raises ValueError, one line.

    Under ``accelerate launch`` each rank reads only its own rows: a map-style dataset is cut with
    ``Dataset.shard(world, rank, contiguous=False)`` (rank r takes rows r, r + world, ...: the same split
    as the .txt/.jsonl corpora), a streamed one with ``datasets.distributed.split_dataset_by_node``. Ids
    are the ``id_field`` column when there is one, else ``row:N`` with N the row's index in the whole
    split, so a sharded run merges to the same files as a single-process one and a rerun resumes.
    """
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
