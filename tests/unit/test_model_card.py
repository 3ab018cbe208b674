"""The model card written from a model folder's stored results: Hugging Face metadata, readable sections, no
machine path, and the same bytes when written twice."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from toolformer_app import cli, config
from toolformer_app.models import CARD_NAME, model_card

SHIPPED = config.SHIPPED_MODELS_DIR / config.SHIPPED_TOOLFORMER
# an absolute POSIX or Windows path: a slash after a space, quote, backtick or bracket, or a drive letter
ABSOLUTE = re.compile(r"""(?:^|[\s"'`(\[=])(?:/(?:home|work|tmp|root|Users|mnt|var|opt|srv)\b|[A-Za-z]:\\)""")


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The shipped adapter's card and stored results (not its weights), its paths made absolute as a finetune
    on some machine once wrote them."""
    d = tmp_path / "models" / "my-toolformer"
    (d / "data").mkdir(parents=True)
    for p in (SHIPPED / "data").iterdir():
        if p.suffix in (".json", ".md") and p.name != "experiments.md" or p.name == "mix.jsonl":
            shutil.copy2(p, d / "data" / p.name)
    card = json.loads((SHIPPED / CARD_NAME).read_text())
    card.pop("recipe", None)
    run = tmp_path / "runs" / "build"
    card["data"]["path"] = card["hyperparameters"]["data"] = str(run / "mix.jsonl")
    card["hyperparameters"]["out_dir"] = str(run / "adapter")
    (d / CARD_NAME).write_text(json.dumps(card, indent=2))
    results = json.loads((d / "data" / "eval_results.json").read_text())
    (d / "data" / "eval_results.json").write_text(json.dumps(results | {"model": str(run / "adapter")}))
    return d


def test_the_card_starts_with_hub_metadata_that_holds_the_results(folder: Path) -> None:
    text = model_card.write(folder).read_text()
    meta = _front_matter(text)
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"
    assert {"toolformer", "tool-use", "lora"} <= set(meta["tags"])
    (index,) = meta["model-index"]
    assert index["name"] == "my-toolformer"
    by_suite = {r["dataset"]["config"]: r["metrics"] for r in index["results"]}
    assert {"math", "facts", "facts_plain", "dates", "plain", "perplexity"} <= set(by_suite)
    math = {m["name"]: m["value"] for m in by_suite["math"]}
    assert math["accuracy, tools (k=10)"] == 23.0 and math["accuracy, base model alone (smollm2-135m)"] == 0.0
    assert math['accuracy, tools (p(" [") >= 0.052904)'] == 23.0  # the calibrated evaluation, its own metric
    assert {m["type"] for m in by_suite["perplexity"]} == {"perplexity"}


def test_the_card_reads_as_sections_not_json(folder: Path) -> None:
    text = model_card.write(folder).read_text()
    for heading in ("## How to load it", "## Training data", "## How it was made", "## Results",
                    "## Calibrated calling", "## Limits", "## More"):
        assert heading in text
    assert "| Calculator | 52 | 74 | 74% |" in text  # calls per tool: a table, not a JSON dump
    assert '{"Calculator"' not in text and "docs/experiments.md" in text and "docs/limits.md" in text
    assert "**0.052904**" in text and "91.5%" in text and "10.0%" in text and "clause_inputs" in text
    assert 'models.load("path/to/my-toolformer")' in text  # outside the working directory: no absolute path


def test_no_path_of_the_machine_is_stored_and_a_second_write_changes_nothing(folder: Path, tmp_path: Path) -> None:
    model_card.write(folder)
    card = json.loads((folder / CARD_NAME).read_text())
    assert card["data"]["path"] == card["hyperparameters"]["data"] == "data/mix.jsonl"  # the folder's copy
    assert card["hyperparameters"]["out_dir"] == "."
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".md"))
    for p in files:
        text = p.read_text()
        assert str(tmp_path) not in text and not ABSOLUTE.search(text), p.name
    before = {p: p.read_bytes() for p in files}
    model_card.write(folder)
    assert {p: p.read_bytes() for p in files} == before


def test_a_path_outside_the_folder_becomes_relative_to_it(tmp_path: Path) -> None:
    model_dir = tmp_path / "runs" / "recipe" / "adapter"
    card = {"data": {"path": str(tmp_path / "runs" / "recipe" / "mix.jsonl"), "sha256": "x"},
            "hyperparameters": {"data": str(tmp_path / "datasets" / "mine.jsonl"), "out_dir": str(model_dir)},
            "metrics": {"path": str(model_dir)}}
    out = model_card.relative_paths(card, model_dir)
    assert out["data"]["path"] == "../mix.jsonl" and out["hyperparameters"]["data"] == "../../../datasets/mine.jsonl"
    assert out["hyperparameters"]["out_dir"] == "." and out["metrics"]["path"] == "."
    assert card["data"]["path"].startswith(str(tmp_path))  # the input is left as it was
    assert model_card.relative_paths(out, model_dir) == out


def test_later_keys_of_calling_and_inference_show_up_in_the_card(folder: Path) -> None:
    card = json.loads((folder / CARD_NAME).read_text())
    card["calling"]["per_tool"] = {"Calculator": {"call_threshold": 0.03}, "QA": {"call_threshold": 0.2}}
    card["inference"] = {"qa_input": "clause", "clause_inputs": ["QA"]}
    (folder / CARD_NAME).write_text(json.dumps(card))
    text = model_card.write(folder).read_text()
    assert "- **per_tool:**" in text and "  - **QA:**" in text and "    - **call_threshold:** 0.2" in text
    assert "- **qa_input:** clause" in text and '- **clause_inputs:** `["QA"]`' in text


def test_a_folder_without_results_still_gets_a_card(tmp_path: Path) -> None:
    (tmp_path / CARD_NAME).write_text(json.dumps({"kind": "lora", "base_model": "smollm2-135m",
                                                  "data": {"path": "/somewhere/else/mix.jsonl"}}))
    text = model_card.write(tmp_path).read_text()
    meta = _front_matter(text)
    assert meta["library_name"] == "peft" and "model-index" not in meta
    assert "Not evaluated yet" in text
    assert not json.loads((tmp_path / CARD_NAME).read_text())["data"]["path"].startswith("/")


def test_the_card_command(folder: Path, capsys) -> None:
    assert cli.main(["card", str(folder)]) == 0
    assert capsys.readouterr().out.strip().endswith("README.md")
    assert cli.main(["card", str(folder / "data")]) == 2  # no toolformer_card.json there


def test_the_shipped_card_is_the_one_its_folder_writes() -> None:
    """The shipped README.md and toolformer_card.json are what `python -m toolformer_app card` writes from the
    shipped folder (rerun it after changing the card's code)."""
    card = json.loads((SHIPPED / CARD_NAME).read_text())
    assert model_card.relative_paths(card, SHIPPED) == card
    assert not ABSOLUTE.search((SHIPPED / CARD_NAME).read_text())
    text = (SHIPPED / "README.md").read_text()
    assert text == model_card.render(model_card.read_inputs(SHIPPED))
    assert _front_matter(text)["library_name"] == "peft" and not ABSOLUTE.search(text)


def test_the_recipe_writes_its_card_and_ships_it_with_relative_paths(tmp_path: Path) -> None:
    from toolformer_app import recipe

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    for name in ("mix.jsonl", "mix.stats.json"):
        shutil.copy2(SHIPPED / "data" / name, run / name)
    for s in recipe.SOURCES:
        (run / "gen" / s.name).mkdir(parents=True)
        shutil.copy2(SHIPPED / "data" / f"stats_{s.name}.json", run / "gen" / s.name / "stats.json")
        shutil.copy2(SHIPPED / "data" / f"cstar_{s.name}.jsonl", run / "gen" / s.name / "dataset.jsonl")
    (run / "eval").mkdir()
    shutil.copy2(SHIPPED / "data" / "eval_results.json", run / "eval" / "results.json")
    card = json.loads((SHIPPED / CARD_NAME).read_text())
    card.pop("recipe")
    card["data"]["path"] = card["hyperparameters"]["data"] = "../mix.jsonl"  # as finetune writes it
    (run / "adapter" / CARD_NAME).write_text(json.dumps(card))
    cfg = recipe.RecipeConfig(out=str(run), ship=str(tmp_path / "shipped" / "my-model"))
    readme = recipe.write_card(cfg, {"generate calendar": 110.0, "finetune": 750.0, "card": 0.1})
    written = json.loads((run / "adapter" / CARD_NAME).read_text())
    assert written["data"]["path"] == "data/mix.jsonl"  # ship_data put the mix beside the weights
    assert written["recipe"]["timing_s"] == {"generate calendar": 110.0, "finetune": 750.0}
    assert written["recipe"]["command"] == recipe.recipe_command(cfg) and recipe.CARD_MARK in readme.read_text()
    recipe.ship(cfg)
    shipped = tmp_path / "shipped" / "my-model"
    assert (shipped / "data" / "cstar_wiki.jsonl").is_file() and not (shipped / "data" / "experiments.md").exists()
    for p in (shipped / "README.md", shipped / CARD_NAME, shipped / "data" / "mix.stats.json"):
        assert str(tmp_path) not in p.read_text(), p.name
    assert recipe.recipe_command(recipe.RecipeConfig(ship="assets/models/smollm2-135m-toolformer")) == \
        model_card.RECIPE_COMMAND  # what `make toolformer` runs
