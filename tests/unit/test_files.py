"""Reading untrusted JSON lines and writing folders atomically (files.py), shared by the UI and the CLI."""

from __future__ import annotations

import json

import pytest

from toolformer_app import files

NESTED = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_is_a_one_line_error_not_a_recursion_error():
    with pytest.raises(ValueError, match=r"^not valid JSON \(nested too deeply\)$"):
        files.parse_json_line(NESTED)


def test_a_lone_surrogate_escape_is_refused_but_a_pair_is_a_character():
    with pytest.raises(ValueError, match="lone surrogate"):
        files.parse_json_line('{"a": ["x", {"\\udc00": 1}]}')
    assert files.parse_json_line('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001F600"}


def test_generate_input_reports_nested_and_surrogate_lines_by_number(tmp_path):
    """`generate --input` reads .jsonl through read_jsonl_numbered: no traceback, the line is named."""
    from toolformer_app.pipeline.corpus import load_texts

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([NESTED, '{"text": "a \\ud800"}', json.dumps({"text": "2 + 2 = 4"})]) + "\n")
    errors: list[str] = []
    assert load_texts(str(path), errors=errors) == [("line:3", "2 + 2 = 4")]
    assert errors == ["line 1: not valid JSON (nested too deeply)",
                      "line 2: not valid text (a lone surrogate \\ud800; use UTF-8 characters)"]


def test_atomic_write_dir_leaves_nothing_when_a_file_fails(tmp_path, monkeypatch):
    out = files.atomic_write_dir(tmp_path / "ds" / "a", {"x.txt": "1", "y.txt": "2"})
    assert sorted(p.name for p in out.iterdir()) == ["x.txt", "y.txt"]
    with pytest.raises(UnicodeEncodeError):
        files.atomic_write_dir(tmp_path / "ds" / "b", {"x.txt": "ok", "y.txt": "\ud800"})
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["a"]


def test_jsonl_text_names_the_row_with_an_unencodable_string():
    with pytest.raises(ValueError, match=r"^t7: not valid text \(a lone surrogate \\udfff\)$"):
        files.jsonl_text([{"id": "ok", "text": "fine"}, {"id": "t7", "text": "x\udfff"}])
