"""The C* writer (pipeline.cstar): keep at tau_f, merge, mix in the run's call-free texts, write atomically."""

from __future__ import annotations

import json

import pytest

from toolformer_app.pipeline import Candidate
from toolformer_app.pipeline.cstar import NoCallKept, build_cstar, write_cstar

TEXT = "The orchard has 36 rows of 24 apple trees, so it holds 864 trees in all."


def _cand(text_id: str, reduction: float, tool: str = "Calculator") -> Candidate:
    return Candidate(text_id=text_id, tool=tool, token_pos=17, char_pos=54, p_i=0.4, input="36 * 24", result="864",
                     loss_plain=2.3, loss_empty=2.4, loss_result=2.3 - reduction, loss_reduction=reduction)


TEXTS = {"a": TEXT, "b": TEXT, **{f"p{i}": f"Plain text {i}." for i in range(5)}}
CANDS = [_cand("a", 1.5), _cand("b", 0.2)]


def test_c_star_alone_keeps_only_texts_with_a_call_at_tau_f():
    c = build_cstar(TEXTS, CANDS, 1.0)
    assert [r["id"] for r in c.rows] == ["a"] and (c.with_calls, c.plain, c.available_plain) == (1, 0, 6)
    assert "[Calculator(36 * 24) -> 864]" in c.rows[0]["text"]
    assert [r["id"] for r in build_cstar(TEXTS, CANDS, {"Calculator": 0.1}).rows] == ["a", "b"]  # per tool


def test_the_mix_takes_the_run_s_call_free_texts_at_the_ratio_in_text_order_and_reproducibly():
    c = build_cstar(TEXTS, CANDS, 1.0, plain_ratio=3, seed=1)
    plain = [r for r in c.rows if not r["calls"]]
    assert c.plain == len(plain) == 3 and all(r["text"] == r["original"] == TEXTS[r["id"]] for r in plain)
    assert [r["id"] for r in c.rows] == [i for i in TEXTS if i in {r["id"] for r in c.rows}]
    assert build_cstar(TEXTS, CANDS, 1.0, plain_ratio=3, seed=1).rows == c.rows
    assert build_cstar(TEXTS, CANDS, 1.0, plain_ratio=50).plain == 6  # "b" kept no call at 1.0: it joins the pool
    with pytest.raises(ValueError, match="plain_ratio"):
        build_cstar(TEXTS, CANDS, 1.0, plain_ratio=float("nan"))


def test_write_cstar_writes_dataset_and_meta_at_once_or_nothing(tmp_path):
    out = tmp_path / "export"
    c = write_cstar(out, TEXTS, CANDS, 1.0, plain_ratio=2, meta={"source": "test"})
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    meta = json.loads((out / "meta.json").read_text())
    assert rows == c.rows and (meta["with_calls"], meta["plain"], meta["source"]) == (1, 2, "test")
    write_cstar(out, TEXTS, CANDS, 0.1)  # an existing folder: both files replaced
    assert json.loads((out / "meta.json").read_text())["plain"] == 0
    with pytest.raises(NoCallKept):
        write_cstar(tmp_path / "none", TEXTS, CANDS, 5.0)
    with pytest.raises(ValueError, match="lone surrogate"):
        write_cstar(tmp_path / "bad", {"a": TEXT[:10] + "\ud800" + TEXT[11:]}, CANDS, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
