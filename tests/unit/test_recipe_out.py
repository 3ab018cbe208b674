"""`recipe --out` refuses a folder that holds something else, as `generate` does."""

from __future__ import annotations

import json

from toolformer_app import cli


def test_a_non_empty_folder_without_a_recipe_is_refused_and_left_alone(tmp_path, capsys, monkeypatch):
    from toolformer_app import recipe

    monkeypatch.setattr(recipe, "run_recipe", lambda cfg: (tmp_path / "ran").mkdir() or tmp_path)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("someone's work")
    assert cli.main(["recipe", "--out", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and not (tmp_path / "ran").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert cli.main(["recipe", "--out", str(a_file)]) == 2


def test_a_previous_recipe_or_an_empty_folder_is_accepted(tmp_path, monkeypatch):
    from toolformer_app import recipe

    ran: list[str] = []
    monkeypatch.setattr(recipe, "run_recipe", lambda cfg: ran.append(cfg.out) or tmp_path)
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "recipe.json").write_text(json.dumps({}))
    (previous / "recipe.log").write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (previous, empty, tmp_path / "new"):
        assert cli.main(["recipe", "--out", str(folder)]) == 0
    assert len(ran) == 3
