"""The dated corpus: documents carry their creation date, the Calendar answers with it, and the texts
are unlike the dates evaluation suite."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from pathlib import Path

from toolformer_app.pipeline.config import Candidate
from toolformer_app.pipeline.corpus import load_texts
from toolformer_app.pipeline.dated import TEMPLATES, dated_texts
from toolformer_app.pipeline.execution import execute_calls
from toolformer_app.tools.calendar import Calendar, document_date, today_sentence

EVAL_DATES = Path(__file__).resolve().parents[2] / "assets" / "eval" / "dates.jsonl"


def test_same_seed_same_documents_balanced_over_templates() -> None:
    a, b = dated_texts(60), dated_texts(60)
    assert a == b and len({d.text for d in a}) == 60
    assert dated_texts(20, seed=1) != dated_texts(20, seed=2)
    assert len({d.text.split(" ")[0] for d in a}) >= len(TEMPLATES) - 2  # every template is used


def test_each_document_uses_words_that_depend_on_its_date_but_never_prints_the_date() -> None:
    for doc in dated_texts(100):
        day = doc.date
        date_words = {f"{day:%A}", f"{day:%B}", str(day.year)}
        assert date_words & set(doc.text.replace(",", " ").replace(".", " ").split()), doc.text
        assert day.isoformat() not in doc.text
        assert f"{day:%B} {day.day}, {day.year}" not in doc.text  # the Calendar's answer is not in the text


def test_unlike_the_dates_evaluation_suite() -> None:
    prompts = [json.loads(line)["prompt"] for line in EVAL_DATES.read_text().splitlines()]
    starts = {p.split(" ")[0] for p in prompts}  # "How", "What", "Which"
    texts = [d.text for d in dated_texts(300)]
    assert not any("?" in t or "The answer is" in t for t in texts)
    assert not any(t.split(" ")[0] in starts for t in texts)
    assert not any(p.replace(" The answer is", "") in t for p in prompts for t in texts)


def test_the_calendar_answers_with_the_documents_date() -> None:
    doc = dated_texts(1)[0]
    cal = Calendar(clock=lambda: datetime.date(2030, 1, 1))
    bound = cal.for_document({"date": doc.date.isoformat()})
    assert bound.run("").output == today_sentence(doc.date)
    assert cal.for_document(None) is cal and cal.for_document({}) is cal  # written now: today
    # a corpus whose dates are unknown is not annotated with the Calendar (A.1)
    assert not cal.accepts_document({"date": None}) and cal.accepts_document({}) and cal.accepts_document(None)
    assert document_date({"date": "2019-05-04T10:00:00"}) == datetime.date(2019, 5, 4)
    assert document_date({"date": "not a date"}) is None


def test_generate_passes_each_documents_date_to_the_calendar() -> None:
    metas: dict[str, dict] = {}
    items = load_texts(dated=True, limit=12, metas=metas)
    docs = {d.id: d for d in dated_texts(12)}
    assert [i for i, _ in items] == list(docs) and all(metas[i]["date"] == docs[i].date.isoformat() for i in docs)
    counts, reasons = Counter(), Counter()
    for text_id, _ in items[:3]:
        cands = [Candidate(text_id, "Calendar", 1, 4, 0.1, "")]
        execute_calls(cands, Calendar().for_document(metas[text_id]), counts, reasons)
        assert cands[0].result == today_sentence(docs[text_id].date)
    wiki_meta: dict[str, dict] = {}
    load_texts(arithmetic=True, limit=3, metas=wiki_meta)
    assert all(m == {"date": None} for m in wiki_meta.values())


def test_a_jsonl_date_field_is_the_texts_creation_date(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "Closed today.", "date": "2021-03-04"}) + "\n"
                    + json.dumps({"text": "No date here."}) + "\n")
    metas: dict[str, dict] = {}
    items = load_texts(str(path), metas=metas)
    assert metas == {items[0][0]: {"date": "2021-03-04"}}
