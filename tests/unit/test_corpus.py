"""pipeline.corpus: one reader for files, typed text, uploads and passages; ids and dates kept."""

from __future__ import annotations

import json

from toolformer_app.pipeline import corpus


def test_a_txt_file_and_the_same_text_typed_into_a_box_give_the_same_texts(tmp_path):
    content = "First paragraph,\nstill first.\n\n\nSecond one.\r\n\r\nThird."
    path = tmp_path / "c.txt"
    path.write_bytes(content.encode())
    from_file = corpus.load_texts(str(path))
    assert [t for _, t in from_file] == corpus.split_paragraphs(content)
    assert [i for i, _ in from_file] == ["line:1", "line:5", "line:7"]  # the line where each paragraph starts
    assert corpus.typed_texts(content)[0] == ("1", "First paragraph,\nstill first.")


def test_a_jsonl_upload_keeps_its_ids_and_dates(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps({"id": "doc-7", "text": "Today is a good day.", "date": "2019-03-04"}) + "\n"
                    + json.dumps({"text": "No date here."}) + "\n")
    metas: dict[str, dict] = {}
    items = corpus.load_texts(str(path), metas=metas, max_bytes=10_000)
    assert items == [("doc-7", "Today is a good day."), ("line:2", "No date here.")]
    assert metas == {"doc-7": {"date": "2019-03-04"}}


def test_passages_are_whole_sentences_under_the_word_budget():
    text = " ".join(f"Sentence number {n} has six words." for n in range(40))
    passages = corpus.split_passage(text, max_words=20)
    assert all(p.endswith(".") and len(p.split()) <= 20 for p in passages)
    assert " ".join(passages) == text
