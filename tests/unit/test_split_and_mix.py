"""The train/eval split by article, the MT corpus, the C* precision figure and the finetuning mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolformer_app.evaluation import suites
from toolformer_app.pipeline.config import Candidate
from toolformer_app.pipeline.corpus import load_texts
from toolformer_app.pipeline.filtering import borne_out, build_stats, precision
from toolformer_app.pipeline.foreign import foreign_texts
from toolformer_app.pipeline.mix import build_mix
from toolformer_app.pipeline.split import eval_titles, held_out_start, training_wiki_items
from toolformer_app.tools.corpus import wiki_corpus


def test_no_eval_article_is_in_the_training_split() -> None:
    corpus = wiki_corpus()
    items = training_wiki_items()
    banned = eval_titles()
    assert len(banned) > 100 and len(items) > 9000
    assert all(t.casefold() not in banned for _, t, _ in items)
    assert all(i < held_out_start(len(corpus.passages)) for i, _, _ in items)
    held_out = set(suites.held_out_texts())
    assert not any(text in held_out for _, _, text in items)
    facts = [json.loads(line) for line in (suites.ASSETS / "facts.jsonl").read_text().splitlines()]
    subjects = {f["meta"]["subject"].casefold() for f in facts}
    assert subjects <= banned


def test_generate_wiki_reads_only_training_articles() -> None:
    titles = wiki_corpus().titles
    ids = [i for i, _ in load_texts(wiki=True, limit=3000)]
    banned = eval_titles()
    indices = {int(i.split(":")[1].split(".")[0]) for i in ids}
    assert all(titles[n].casefold() not in banned for n in indices)
    skipped = [n for n in range(max(indices)) if titles[n].casefold() in banned]
    assert skipped and not set(skipped) & indices  # eval articles inside the range were skipped


def test_foreign_texts_quote_french_and_spanish_and_skip_eval_articles() -> None:
    texts = foreign_texts(20)
    assert len(texts) == 20 and texts == foreign_texts(20)
    assert {i.split(":")[0] for i, _ in texts} == {"mt-fr", "mt-es"}
    banned = eval_titles()
    for _, text in texts:
        assert text.count('"') >= 2
        assert not any(f" on {b} with" in text.casefold() for b in banned)


@pytest.mark.parametrize(("result", "following", "expected"), [
    ("Today is Friday, September 26, 2014.", " Friday, in the", True),
    ("Today is Sunday, November 29, 2026.", " is a picaresque novel", False),
    ("65", " 65 cows", True),
    ("1,400", " 1400 people", True),
    ("Nairobi", " the capital Nairobi", True),
    ("Nairobi", "", False),
    (None, " 65", False),
])
def test_a_result_is_borne_out_by_its_number_or_content_words(result, following, expected) -> None:
    assert borne_out(result, following) is expected


def _cand(tool: str, result: str, following: list[str], red: float = 1.0, pos: int = 0, text: str = "t:1"):
    return Candidate(text, tool, 1, pos, 0.1, "", result=result, loss_plain=2.0, loss_empty=2.0,
                     loss_result=2.0 - red, loss_reduction=red, next_tokens=following)


def test_precision_is_in_the_stats_per_tool() -> None:
    cands = [_cand("Calendar", "Today is Friday, May 1, 2020.", [" Friday", ","]),
             _cand("Calendar", "Today is Friday, May 1, 2020.", [" a", " novel"], pos=5),
             _cand("Calculator", "65", [" 65"], pos=9), _cand("Calculator", "7", [" 8"], red=0.1, pos=12)]
    assert precision(cands[:2]) == 0.5 and precision([]) is None
    stats = build_stats([], cands, {"Calendar": 0.3, "Calculator": 0.3}, 1)
    assert stats["per_tool"]["Calendar"]["precision"] == 0.5
    assert stats["per_tool"]["Calculator"]["precision"] == 1.0  # the rejected call does not count
    assert stats["precision"] == pytest.approx(2 / 3, abs=1e-4)


def _gen_dir(path: Path, annotated: dict[str, list[dict]], plain: list[str]) -> Path:
    path.mkdir(parents=True)
    rows, records = [], []
    for text_id, calls in annotated.items():
        original = f"Text {text_id} has words enough to hold calls."
        rows.append({"id": text_id, "original": original, "text": original, "calls": calls})
        records.append({"text_id": text_id, "text": original})
    records += [{"text_id": i, "text": f"Plain text {i}."} for i in plain]
    (path / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_mix_keeps_the_best_call_per_text_and_the_ratio_of_call_free_texts(tmp_path: Path) -> None:
    two_calls = [{"tool": "Calendar", "input": "", "result": "Today is Friday.", "char_pos": 4, "token_pos": 1,
                  "loss_reduction": 0.4},
                 {"tool": "Calendar", "input": "", "result": "Today is Friday.", "char_pos": 9, "token_pos": 2,
                  "loss_reduction": 0.9}]
    a = _gen_dir(tmp_path / "a", {f"dated:{n}": two_calls for n in range(4)}, [f"dated:{n}" for n in range(4, 10)])
    b = _gen_dir(tmp_path / "b", {"arith:0": two_calls[:1]}, ["arith:1"])
    rows, stats = build_mix([a, b], plain_ratio=1.0, extra_wiki=False, borne_out_only=False)
    with_calls = [r for r in rows if r["calls"]]
    assert stats.with_calls == len(with_calls) == 5 and stats.plain == 5 and stats.plain_ratio == 1.0
    best = next(r for r in with_calls if r["id"] == "dated:0")
    assert [c["char_pos"] for c in best["calls"]] == [9] and best["text"].count("[Calendar()") == 1
    assert best["text"].replace(" [Calendar() -> Today is Friday.]", "") == "Text dated:0 has words enough to hold calls."
    assert all("[" not in r["text"] for r in rows if not r["calls"])
    rows2, _ = build_mix([a, b], plain_ratio=1.0, extra_wiki=False, borne_out_only=False)
    assert rows2 == rows  # seeded
    # asking for more call-free texts than the runs read fills up from training wiki passages
    more, s = build_mix([a, b], plain_ratio=3.0, borne_out_only=False)
    assert s.plain == 15 and s.texts_per_source["wiki"] == 15 - 5  # dated and arithmetic (templated) give one call-free text per call text
    banned = eval_titles()
    titles = wiki_corpus().titles
    assert all(titles[int(r["id"].split(":")[1])].casefold() not in banned for r in more if r["id"].startswith("wiki"))
    with pytest.raises(ValueError, match="not a finished generate run"):
        build_mix([tmp_path / "missing"])
    # call_repeats: every call text twice, the call-free texts once and the same ones
    twice, s2 = build_mix([a, b], plain_ratio=1.0, extra_wiki=False, borne_out_only=False, call_repeats=2)
    assert s2.with_calls == 5 and s2.plain == 5 and s2.call_repeats == 2 and len(twice) == 15
    assert sorted(r["id"] for r in twice if r["calls"]) == sorted(2 * [r["id"] for r in with_calls])
    assert sorted(r["id"] for r in twice if not r["calls"]) == sorted(r["id"] for r in rows if not r["calls"])
    with pytest.raises(ValueError, match="call_repeats"):
        build_mix([a, b], call_repeats=0)


def test_the_mix_stats_hold_the_sha256_of_the_file_finetune_reads(tmp_path: Path) -> None:
    """One hash of one mix: the stats' sha256 is the written file's, which the card and `finetune` record."""
    from toolformer_app.models import file_sha256
    from toolformer_app.pipeline.mix import write_mix

    call = {"tool": "Calendar", "input": "", "result": "Today is Friday.", "char_pos": 4, "token_pos": 1,
            "loss_reduction": 0.4}
    a = _gen_dir(tmp_path / "a", {f"dated:{n}": [call] for n in range(3)}, ["dated:3", "dated:4"])
    stats = write_mix(tmp_path / "mix.jsonl", [a], plain_ratio=1.0, extra_wiki=False, borne_out_only=False)
    assert stats.sha256 == file_sha256(tmp_path / "mix.jsonl")
    assert json.loads((tmp_path / "mix.stats.json").read_text())["sha256"] == stats.sha256


def test_the_mix_drops_calls_whose_result_is_not_borne_out(tmp_path: Path) -> None:
    call = {"tool": "Calendar", "input": "", "result": "Today is Friday, May 1, 2020.", "char_pos": 4,
            "token_pos": 1, "loss_reduction": 0.5}
    d = _gen_dir(tmp_path / "d", {"dated:0": [call], "dated:1": [call]}, [])
    cands = [{"text_id": "dated:0", "char_pos": 4, "tool": "Calendar", "input": "", "next_tokens": [" Friday", ","]},
             {"text_id": "dated:1", "char_pos": 4, "tool": "Calendar", "input": "", "next_tokens": [" a", " novel"]}]
    (d / "candidates.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cands))
    rows, stats = build_mix([d], plain_ratio=1.0, extra_wiki=False)
    assert [r["id"] for r in rows if r["calls"]] == ["dated:0"]
    assert stats.texts_without_borne_out_call == 1
    assert [r["id"] for r in rows if not r["calls"]] == ["dated:1"]  # it joins the call-free pool


def _call(tool: str, red: float, result: str = "42") -> dict:
    return {"tool": tool, "input": "x", "result": result, "char_pos": 4, "token_pos": 1, "loss_reduction": red}


def test_the_largest_tool_holds_at_most_its_share_of_the_call_texts(tmp_path: Path) -> None:
    from toolformer_app.pipeline.mix import cap_tool_share

    cal = _gen_dir(tmp_path / "cal", {f"dated:{n}": [_call("Calendar", n / 10)] for n in range(20)},
                   [f"dated:{n}" for n in range(20, 40)])
    calc = _gen_dir(tmp_path / "calc", {f"arith:{n}": [_call("Calculator", 1.0)] for n in range(4)},
                    [f"arith:{n}" for n in range(4, 12)])
    wiki = _gen_dir(tmp_path / "wiki", {f"wiki:{n}": [_call("QA", 1.0)] for n in range(3)},
                    [f"wiki:{n}" for n in range(3, 30)])
    mt = _gen_dir(tmp_path / "mt", {f"foreign:{n}": [_call("MT", 1.0)] for n in range(2)}, ["foreign:9"])
    rows, stats = build_mix([cal, calc, wiki, mt], plain_ratio=1.0, extra_wiki=False, borne_out_only=False)
    shares = stats.calls_per_tool
    assert max(shares.values()) <= 0.35 * stats.with_calls
    assert shares["Calendar"] == 4 and stats.capped_per_tool == {"Calendar": 16}  # 4 <= 0.35 * (4 + 9)
    kept = sorted(r["id"] for r in rows if r["calls"] and r["id"].startswith("dated"))
    assert kept == [f"dated:{n}" for n in (16, 17, 18, 19)]  # the largest loss reductions
    # call-free text per source, in proportion to its call texts; capped dated texts join the dated pool
    assert stats.plain_per_source == {"dated": 4, "arith": 4, "wiki": 3, "foreign": 1}
    assert cap_tool_share([{"calls": [_call("MT", 1)]}] * 3, 0.35) == ([{"calls": [_call("MT", 1)]}] * 3, [])
    # only the largest tool is capped: a few calls of the small tools never shrink the second one
    many = [{"calls": [_call("Calendar", 1)]}] * 142 + [{"calls": [_call("Calculator", 1)]}] * 49 + \
        [{"calls": [_call("QA", 1)]}] * 9
    kept_rows, _ = cap_tool_share(many, 0.35)
    tools = [r["calls"][0]["tool"] for r in kept_rows]
    assert tools.count("Calendar") == 31 and tools.count("Calculator") == 49


def test_a_tool_limit_holds_one_tool_while_another_grows(tmp_path: Path) -> None:
    cal = _gen_dir(tmp_path / "cal", {f"dated:{n}": [_call("Calendar", n / 10)] for n in range(10)},
                   [f"dated:{n}" for n in range(10, 20)])
    calc = _gen_dir(tmp_path / "calc", {f"arith:{n}": [_call("Calculator", 1.0)] for n in range(30)},
                    [f"arith:{n}" for n in range(30, 40)])
    rows, stats = build_mix([cal, calc], plain_ratio=1.0, extra_wiki=False, borne_out_only=False,
                            max_tool_share=1.0, tool_limits={"Calendar": 3})
    assert stats.calls_per_tool == {"Calendar": 3, "Calculator": 30} and stats.capped_per_tool == {"Calendar": 7}
    kept = sorted(r["id"] for r in rows if r["calls"] and r["id"].startswith("dated"))
    assert kept == ["dated:7", "dated:8", "dated:9"]  # the largest loss reductions
    assert all(not r["calls"] for r in rows if r["id"] in {f"dated:{n}" for n in range(7)})  # call-free if at all
    with pytest.raises(ValueError, match="tool limits"):
        build_mix([cal], tool_limits={"Calendar": -1})


def test_the_mix_never_keeps_a_call_that_copies_its_own_text(tmp_path: Path) -> None:
    original = "Text wiki:0 has words enough to hold calls."
    copy = _call("WikiSearch", 2.0, result="Text wiki:0 has words enough to hold calls. It is a text.")
    d = _gen_dir(tmp_path / "w", {"wiki:0": [copy], "wiki:1": [_call("QA", 1.0)]}, [])
    assert original in (d / "dataset.jsonl").read_text()
    rows, stats = build_mix([d], plain_ratio=0.0, extra_wiki=False, borne_out_only=False)
    assert [r["id"] for r in rows] == ["wiki:1"] and stats.self_retrieved_dropped == 1


def test_mixes_built_apart_add_up_with_every_id_once_and_the_files_hash():
    import hashlib

    from toolformer_app.files import jsonl_text
    from toolformer_app.pipeline.mix import MixStats, add_mixes

    def stats(n: int) -> MixStats:
        return MixStats(with_calls=n, plain=n, plain_ratio=1.0, calls_per_tool={}, texts_per_source={}, sha256="")

    call = [{"tool": "QA", "input": "q", "result": "r", "char_pos": 0}]
    a = [{"id": "wiki:1", "text": "a", "calls": []}, {"id": "arith:1", "text": "b", "calls": call}]
    b = [{"id": "wiki:1", "text": "a again", "calls": []}, {"id": "country:X:question", "text": "c", "calls": call}]
    rows, out = add_mixes([(a, stats(1)), (b, stats(1))], seed=0)
    assert sorted(r["id"] for r in rows) == ["arith:1", "country:X:question", "wiki:1"]
    assert next(r for r in rows if r["id"] == "wiki:1")["text"] == "a"  # the first part keeps a shared id
    assert (out["with_calls"], out["plain"], out["calls_per_tool"]) == (2, 1, {"QA": 2})
    assert out["texts_per_source"] == {"wiki": 1, "arith": 1, "country": 1} and len(out["parts"]) == 2
    assert out["sha256"] == hashlib.sha256(jsonl_text(rows).encode()).hexdigest()
    assert add_mixes([(a, stats(1)), (b, stats(1))], seed=0)[0] == rows  # seeded
