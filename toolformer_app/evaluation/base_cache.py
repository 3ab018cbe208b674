"""The base model's evaluation results, kept between runs (a request cache, as lm-evaluation-harness keeps one).

An experiment loop evaluates many finetunes of one base model, and the ``base`` mode decodes that base plainly,
so its rows come out the same in every run: about a quarter of a full ``eval``'s time. They are stored in SQLite
under the data dir, one row per item (a run over more items reuses the ones it has), keyed by everything the
output depends on: the base's weights and dtype (a fingerprint of every tensor), the prompt, the token budget and
the answer type (which decides where decoding stops), and the cache's own version; the base's perplexity by its
texts, budget and batch size.

Only a float32 base that the runner loaded by name is cached: in float32 a batched decode equals decoding alone,
so which items share a batch does not matter (in bf16 it can); a model object passed in (a test's scripted
wrapper) may decide differently from what its weights say. ``EvalConfig.base_cache`` (``eval --no-base-cache``) turns it off.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import warnings
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

VERSION = 1  # bump when plain greedy decoding or the perplexity measure changes what it returns


def fingerprint(model: Any) -> str:
    """A digest of the model's class, config, dtype and every parameter's sum and sum of squares (float64): two
    loads of the same weights agree, a different adapter merge or checkpoint does not."""
    import torch

    h = hashlib.sha256(f"{type(model).__name__}|{VERSION}".encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, p in model.named_parameters():
            x = p.detach().double()
            h.update(f"{name}|{p.dtype}|{tuple(p.shape)}|{float(x.sum())!r}|{float((x * x).sum())!r}".encode())
    return h.hexdigest()[:32]


class BaseCache:
    """Results of one base model (``fingerprint``) in one SQLite file; every write is one transaction.

    A file that SQLite cannot use (damaged, not a database, read-only) only turns the cache off for this run, with
    one warning: the evaluation decodes what it would have read, and nothing is written over the file."""

    def __init__(self, path: str | Path, model_key: str):
        self.path, self.model_key = Path(path), model_key
        self.hits = self.misses = 0
        self.broken = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._try(lambda db: db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)"))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:  # one transaction, then closed
            yield db

    def key(self, *parts: Any) -> str:
        """The key of one result: this model's fingerprint and the given parts (JSON-encoded)."""
        return hashlib.sha256(json.dumps([self.model_key, VERSION, *parts]).encode()).hexdigest()

    def _try(self, work: Any) -> Any:
        """``work(db)`` in one transaction; None (and the cache off, one warning) when SQLite cannot use the file."""
        if self.broken:
            return None
        try:
            with self._connect() as db:
                return work(db)
        except (sqlite3.Error, ValueError) as exc:  # ValueError: a stored value that is not JSON
            self.broken = True
            warnings.warn(f"{self.path.name}: base-mode cache off for this run ({exc})", stacklevel=2)
            return None

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)

        def read(db: sqlite3.Connection) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = keys[i : i + 500]
                rows = db.execute(f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall()
                found.update((k, json.loads(v)) for k, v in rows)
            return found

        found = self._try(read) or {}
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        if items:
            self._try(lambda db: db.executemany("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                                                [(k, json.dumps(v)) for k, v in items.items()]))
