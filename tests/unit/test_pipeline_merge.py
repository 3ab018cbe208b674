"""Merging kept calls into C*: byte identity, re-filtering, Table 2, resumable output files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.helpers import stats_without_timings
from toolformer_app.calls import strip_calls
from toolformer_app.pipeline import PipelineConfig, keep_if_helpful, kept_table, merge_calls
from toolformer_app.pipeline.config import Candidate
from toolformer_app.pipeline.positions import encode_text
from toolformer_app.pipeline.sampling import parse_sampled_call

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cand(text_id, pos, red, tool="Calculator", inp="1 + 1", result="2", char_pos=None):
    return Candidate(text_id, tool, pos, char_pos if char_pos is not None else pos, 0.1, inp, result,
                     loss_plain=1.0, loss_empty=1.0, loss_result=None if red is None else 1.0 - red, loss_reduction=red)


texts_strategy = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="[]", exclude_categories=("Cs",)),
    min_size=2, max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts_strategy, picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=4))
def test_augmented_text_without_its_calls_is_byte_identical(real_tokenizer, text, picks):
    enc = encode_text(real_tokenizer, "t", text)
    allowed = [i for i, ok in enumerate(enc.insertable) if ok]
    if not allowed:
        return
    cands = [_cand("t", allowed[p % len(allowed)], 1.0, char_pos=enc.char_starts[allowed[p % len(allowed)]],
                   result="x]y->z") for p in picks]
    rows = merge_calls({"t": text}, cands)
    assert rows and rows[0]["original"] == text
    assert strip_calls(rows[0]["text"]).encode() == text.encode()


def test_refiltering_at_a_new_tau_f_needs_no_model_and_texts_without_calls_are_dropped():
    cands = [_cand("a", 1, 0.2), _cand("a", 3, 1.5), _cand("b", 2, 0.6), _cand("c", 1, None, result=None)]
    assert len(keep_if_helpful(cands, 0.5)) == 2
    assert len(keep_if_helpful(cands, 1.0)) == 1
    assert len(keep_if_helpful(cands, {"Calculator": 0.1})) == 3
    rows = merge_calls({"a": "0123456789", "b": "abcdefgh", "c": "zzz"}, keep_if_helpful(cands, 1.0))
    assert [r["id"] for r in rows] == ["a"]
    assert kept_table(cands) == {"Calculator": {"0.5": 2, "1.0": 1, "2.0": 0}}


def test_two_kept_calls_at_one_position_keep_the_more_helpful():
    cands = [_cand("a", 2, 0.8, inp="1 + 1"), _cand("a", 2, 1.2, inp="2 + 2", result="4")]
    (row,) = merge_calls({"a": "ab cd ef"}, cands)
    assert row["text"] == "ab [Calculator(2 + 2) -> 4] cd ef"


@pytest.mark.parametrize(
    "decoded,expected",
    [
        ("Calculator(400 / 1400)]", ("Calculator", "400 / 1400")),
        ("Calculator((1 + 2) * 3) -> 9]", ("Calculator", "(1 + 2) * 3")),
        ("QA(\"Who, me?\")]", ("QA", "\"Who, me?\"")),
        ("Calculator(1 -> 2)]", None),
        ("just words]", None),
        ("Calculator(3 + 4", None),
    ],
)
def test_sampled_calls_are_parsed_on_decoded_text(decoded, expected):
    assert parse_sampled_call(decoded) == expected


def test_config_rejects_impossible_settings():
    for bad in (dict(k=0), dict(m=1000), dict(temperature=0), dict(tau_s=2.0), dict(tools=())):
        with pytest.raises(ValueError):
            PipelineConfig(**bad).validate()


def _generate(args, out, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    # SIGINT back to its default in the child: a shell that starts the tests in the background (`cmd &`)
    # makes its children ignore SIGINT, and then Ctrl-C would never reach generate.
    return subprocess.Popen([sys.executable, "-m", "toolformer_app", "generate", *args, "--out", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow
def test_interrupted_generate_resumes_to_the_same_files(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    # 60 texts: enough that Ctrl-C lands mid-run (a text takes a few ms on the tiny model)
    corpus.write_text("\n".join(f"Item {n}: we had {n} boxes and {n + 3} crates, so {2 * n + 3} in all." for n in range(60)))
    args = ["--input", str(corpus), "--model", str(tiny_model_dir), "--tools", "Calculator", "--tau-s", "0",
            "--k", "2", "--m", "2", "--max-call-tokens", "6", "--batch-size", "1", "--temperature", "1.0"]
    full = tmp_path / "full"
    p = _generate(args, full)
    assert p.wait(timeout=300) == 0, p.stderr.read()

    part = tmp_path / "part"
    p = _generate(args, part)
    log = part / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)  # Ctrl-C mid-run
    p.wait(timeout=60)
    lines_before = len(log.read_text().splitlines())
    assert 2 <= lines_before < 60
    p = _generate(args, part)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "resuming" in err
    for name in ("candidates.jsonl", "dataset.jsonl"):
        assert (part / name).read_text() == (full / name).read_text(), name
    assert stats_without_timings(part / "stats.json") == stats_without_timings(full / "stats.json")
    stats = json.loads((part / "stats.json").read_text())
    assert stats["texts_seen"] == 60
    # throughput: every text's share of its batch's seconds, summed over the interrupted and resumed runs
    assert stats["throughput"]["per_tool"]["Calculator"]["texts"] == stats["per_tool"]["Calculator"]["texts_selected"] > 50
    assert stats["throughput"]["per_tool"]["Calculator"]["seconds"] > 0
    assert stats["per_tool"]["Calculator"]["samples_drawn"] > 0


def test_generate_rejects_bad_input_with_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    for path in (empty, binary, tmp_path / "missing.txt"):
        p = subprocess.run([sys.executable, "-m", "toolformer_app", "generate", "--input", str(path), "--out",
                            str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2
        assert p.stderr.strip().startswith("error:") and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_accelerate_launch_with_two_processes_shards_and_merges(tiny_model_dir, tmp_path):
    import shutil

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"Row {n}: {n} plus {n + 1} makes {2 * n + 1} in total." for n in range(6)))
    args = ["--input", str(corpus), "--model", str(tiny_model_dir), "--tools", "Calculator", "--tau-s", "0",
            "--k", "1", "--m", "2", "--max-call-tokens", "5", "--batch-size", "2"]
    single = tmp_path / "single"
    p = _generate(args, single)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate is a dependency"
    sharded = tmp_path / "sharded"
    p = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "toolformer_app", "generate", *args,
                        "--out", str(sharded)], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert (sharded / "records.rank0.jsonl").exists() and (sharded / "records.rank1.jsonl").exists()
    for name in ("candidates.jsonl", "dataset.jsonl"):
        assert (sharded / name).read_text() == (single / name).read_text(), name
    assert stats_without_timings(sharded / "stats.json") == stats_without_timings(single / "stats.json")
