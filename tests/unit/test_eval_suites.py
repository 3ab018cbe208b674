"""The fixed suites: seeded regeneration, sympy-checked answers, custom-suite errors, held-out perplexity texts."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest

from toolformer_app.evaluation import scoring, suites
from toolformer_app.evaluation.suites import SuiteError, load_suite, load_suite_file


def test_regenerating_with_the_seed_gives_the_shipped_files(tmp_path):
    manifest = suites.write_suites(tmp_path, suites.SEED)
    for name in ("math.jsonl", "facts.jsonl", "dates.jsonl", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (suites.ASSETS / name).read_bytes(), name
    assert manifest["version"] == suites.SUITE_VERSION
    assert {f: v["n"] for f, v in manifest["files"].items()} == {"math.jsonl": 200, "facts.jsonl": 200,
                                                                 "dates.jsonl": 200}


def test_another_seed_gives_other_items():
    a, b = suites.generate_suites(1, {"facts": 20}), suites.generate_suites(2, {"facts": 20})
    assert [it.prompt for it in a["math"]] != [it.prompt for it in b["math"]]
    assert [it.prompt for it in a["math"]] == [it.prompt for it in suites.generate_suites(1)["math"]]


def test_math_suite_answers_are_sympy_exact():
    import sympy

    items = load_suite("math")
    assert len(items) == 200 and len({it.prompt for it in items}) == 200
    non_integer = 0
    for it in items:
        expr = it.meta["expression"]
        value = sympy.Rational(sympy.sympify(expr, rational=True))
        assert it.answer == scoring.round2(Fraction(int(value.p), int(value.q)))
        assert value >= 0
        assert it.prompt.endswith("? The answer is")
        # the numbers of the expression are in the text (except 100 for percent and 3 for "three games")
        for number in re.findall(r"\d+(?:\.\d+)?", expr):
            assert number in it.prompt or number in ("100", "3"), (number, it.prompt)
        ops = len(re.findall(r" [-+*/] ", expr))
        assert 1 <= ops <= 3
        non_integer += value.q != 1
    assert non_integer >= 40  # non-integer answers, as in ASDiv/SVAMP


def test_facts_suite():
    items = load_suite("facts")
    assert len(items) == 200 and len({it.prompt for it in items}) == 200
    assert all(it.prompt.startswith(suites.FACTS_PREFIX) for it in items)
    sources = {it.meta["source"] for it in items}
    assert sources == {"countryinfo", "wiki"}
    kenya = [it for it in suites.capital_facts() if it.meta["subject"] == "Kenya"]
    assert kenya[0].prompt.endswith("The capital of Kenya is") and kenya[0].answer == "Nairobi"
    # a copy of the subject never answers: the answer shares no word with the prompt's text
    for it in items:
        body = it.prompt[len(suites.FACTS_PREFIX):]
        assert not set(scoring.normalize_words(it.answer)) & set(scoring.normalize_words(body)), it.prompt


def test_wiki_facts_are_stated_in_their_extract():
    from toolformer_app.tools.corpus import wiki_passages, wiki_titles

    by_title = dict(zip(wiki_titles(), wiki_passages(), strict=True))
    facts = [it for it in load_suite("facts") if it.meta["source"] == "wiki"]
    assert len(facts) == 100
    found = sum(any(it.answer in text for title, text in by_title.items() if title.startswith(it.meta["subject"]))
                for it in facts)
    assert found == len(facts)


def test_dates_suite_shape():
    items = load_suite("dates")
    assert len(items) == 200 and len({it.prompt for it in items}) == 200
    assert {it.meta["clock"] for it in items} == {"2023-01-30"}
    types = {it.answer_type for it in items}
    assert types == {"number", "weekday", "month", "date"}


def test_tools_follow_the_paper():
    assert "WikiSearch" not in suites.TOOLS_BY_KIND["facts"] and "QA" in suites.TOOLS_BY_KIND["facts"]
    assert set(suites.TOOLS_BY_KIND["math"]) == set(suites.ALL_TOOLS)


def test_held_out_texts_are_never_annotated():
    """`generate --wiki --limit N` reads extracts from the start: up to 9,833 texts never reach the tail."""
    from toolformer_app.pipeline.corpus import load_texts
    from toolformer_app.tools.corpus import wiki_passages

    held = suites.held_out_texts()
    assert len(held) == suites.HELD_OUT and held == wiki_passages()[-suites.HELD_OUT:]
    first_held = len(wiki_passages()) - suites.HELD_OUT
    assert first_held == 9833
    seen = load_texts(wiki=True, limit=first_held)
    assert max(int(i.split(":")[1].split(".")[0]) for i, _ in seen) < first_held
    assert suites.held_out_texts(3) == held[:3]


# -- custom suites ----------------------------------------------------------------------------------
def _write(tmp_path, lines: list[str]):
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_custom_suite_loads(tmp_path):
    path = _write(tmp_path, [
        json.dumps({"prompt": "2 + 2 is", "answer": 4, "kind": "math"}),
        "",
        json.dumps({"prompt": "Paris is the capital of", "answer": ["France", "FR"], "kind": "facts", "id": "p"}),
        json.dumps({"prompt": "Today is", "answer": "Monday", "kind": "dates"}),
    ])
    items = load_suite_file(path)
    assert [it.id for it in items] == ["line-1", "p", "line-4"]
    assert items[0].answers == ("4",) and items[1].answers == ("France", "FR")
    assert [it.answer_type for it in items] == ["number", "words", "weekday"]


@pytest.mark.parametrize(
    "lines, message",
    [
        ([json.dumps({"prompt": "a", "answer": "1", "kind": "math"}), '{"prompt": "b", "answer": '],
         r"suite\.jsonl:2: not valid JSON"),
        ([json.dumps({"prompt": "a", "answer": "1", "kind": "poetry"})], r"suite\.jsonl:1: unknown kind 'poetry'"),
        ([json.dumps({"prompt": "a", "kind": "math"})], r"suite\.jsonl:1: missing 'answer'"),
        ([json.dumps({"prompt": "a", "answer": "ten", "kind": "math"})], r"suite\.jsonl:1: a math answer must be"),
        ([json.dumps({"prompt": "", "answer": "1", "kind": "math"})], r"suite\.jsonl:1: \"prompt\" must be"),
        (["[1, 2]"], r"suite\.jsonl:1: expected a JSON object"),
        ([json.dumps({"prompt": "a", "answer": None, "kind": "facts"})], r"suite\.jsonl:1: \"answer\" must be"),
        (["", "  "], r"suite\.jsonl: empty suite"),
    ],
)
def test_custom_suite_errors_name_the_line(tmp_path, lines, message):
    path = _write(tmp_path, lines)
    with pytest.raises(SuiteError, match=message) as info:
        load_suite_file(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_suite(tmp_path):
    with pytest.raises(SuiteError, match="no such file"):
        load_suite_file(tmp_path / "nope.jsonl")
    with pytest.raises(SuiteError, match="unknown suite 'poetry'"):
        load_suite("poetry")


def test_facts_plain_is_the_facts_suite_as_written() -> None:
    from toolformer_app.evaluation import suites as S

    facts, plain = S.load_suite("facts"), S.load_suite(S.FACTS_PLAIN)
    assert len(plain) == len(facts) and [p.answers for p in plain] == [f.answers for f in facts]
    assert all(f.prompt == S.FACTS_PREFIX + p.prompt for f, p in zip(facts, plain, strict=True))
    assert not any(p.prompt.startswith("Please complete") for p in plain)
    assert plain[0].id.startswith("facts_plain-") and len({p.id for p in plain}) == len(plain)
    assert S.TOOLS_BY_KIND[plain[0].kind] == S.TOOLS_BY_KIND["facts"]  # no WikiSearch, as in the paper
