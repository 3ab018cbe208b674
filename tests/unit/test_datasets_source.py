"""`generate --dataset`: parquet/arrow/JSONL/CSV through `datasets`, this rank's rows only, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from tests.unit.helpers import stats_without_timings  # noqa: E402
from toolformer_app.pipeline.corpus import load_dataset_texts  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEXTS = [f"Row {n}: {n} plus {n + 1} makes {2 * n + 1} in total." for n in range(6)]


@pytest.fixture
def parquet(tmp_path) -> Path:
    path = tmp_path / "corpus.parquet"
    datasets.Dataset.from_dict({"body": TEXTS, "lang": ["en"] * len(TEXTS)}).to_parquet(str(path))
    return path


def test_parquet_rows_with_a_chosen_text_field(parquet):
    items = load_dataset_texts(str(parquet), text_field="body")
    assert items == [(f"row:{n}", t) for n, t in enumerate(TEXTS)]
    assert load_dataset_texts(str(parquet), text_field="body", limit=2) == items[:2]


def test_each_rank_reads_only_its_own_rows_and_ids_are_global(parquet):
    whole = load_dataset_texts(str(parquet), text_field="body")
    ranks = [load_dataset_texts(str(parquet), text_field="body", rank=r, world=2) for r in (0, 1)]
    assert ranks[0] == whole[0::2] and ranks[1] == whole[1::2]  # the same split as the .txt corpora
    streamed = [load_dataset_texts(str(parquet), text_field="body", streaming=True, rank=r, world=2) for r in (0, 1)]
    assert streamed == ranks
    assert load_dataset_texts(str(parquet), text_field="body", streaming=True, limit=3) == whole[:3]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".arrow"])
def test_other_formats_and_an_id_column(tmp_path, suffix):
    ds = datasets.Dataset.from_dict({"id": [f"doc{n}" for n in range(3)], "text": TEXTS[:3]})
    path = tmp_path / f"corpus{suffix}"
    if suffix == ".jsonl":
        ds.to_json(str(path), lines=True)
    elif suffix == ".csv":
        ds.to_csv(str(path), index=False)
    else:
        ds.save_to_disk(str(tmp_path / "saved"))
        shutil.copy(next((tmp_path / "saved").glob("*.arrow")), path)
    assert load_dataset_texts(str(path)) == [(f"doc{n}", t) for n, t in enumerate(TEXTS[:3])]


def test_save_to_disk_folder(tmp_path):
    datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(tmp_path / "saved"))
    assert [t for _, t in load_dataset_texts(str(tmp_path / "saved"))] == TEXTS


def test_errors_are_one_line(parquet, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"no column 'text' \(columns: body, lang\); choose one with --text-field"):
        load_dataset_texts(str(parquet))
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(ValueError, match="give a .parquet"):
        load_dataset_texts(str(tmp_path / "notes.docx"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="hub is offline") as info:
        load_dataset_texts("someone/some-corpus")
    assert "\n" not in str(info.value)


def _generate(args: list[str], out: Path, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(launcher or [sys.executable]), "-m", "toolformer_app", "generate", *args, "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_generate_reads_a_parquet_dataset(parquet, tiny_model_dir, tmp_path):
    args = ["--dataset", str(parquet), "--text-field", "body", "--model", str(tiny_model_dir), "--tools",
            "Calculator", "--tau-s", "0", "--k", "1", "--m", "2", "--max-call-tokens", "5", "--limit", "4"]
    p = _generate(args, tmp_path / "out")
    assert p.returncode == 0, p.stderr[-3000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["texts_seen"] == 4
    bad = _generate(["--dataset", str(parquet), "--model", str(tiny_model_dir)], tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: {parquet}: no column 'text' (columns: body, lang); choose one with --text-field"]


@pytest.mark.slow
def test_accelerate_launch_two_processes_each_read_their_own_dataset_rows(parquet, tiny_model_dir, tmp_path):
    args = ["--dataset", str(parquet), "--text-field", "body", "--model", str(tiny_model_dir), "--tools",
            "Calculator", "--tau-s", "0", "--k", "1", "--m", "2", "--max-call-tokens", "5", "--batch-size", "2"]
    single = _generate(args, tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate is a dependency"
    launcher = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    sharded = tmp_path / "sharded"
    p = _generate(args, sharded, launcher)
    assert p.returncode == 0, p.stderr[-3000:]
    for rank in (0, 1):
        ids = [json.loads(line)["text_id"] for line in (sharded / f"records.rank{rank}.jsonl").read_text().splitlines()]
        assert sorted(ids) == sorted(f"row:{n}" for n in range(rank, len(TEXTS), 2))
    for name in ("candidates.jsonl", "dataset.jsonl"):
        assert (sharded / name).read_text() == (tmp_path / "single" / name).read_text(), name
    assert stats_without_timings(sharded / "stats.json") == stats_without_timings(tmp_path / "single" / "stats.json")
