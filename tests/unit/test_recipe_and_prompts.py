"""The recipe's stages and resume plan, the paper's prompt formats, and the `plain` eval suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolformer_app import recipe
from toolformer_app.evaluation import suites
from toolformer_app.evaluation.runner import EvalConfig, load_accuracy_suites, wrong_tool_rate
from toolformer_app.inference import LAMA_PREFIX, QA_PREFIX, format_prompt


def test_the_plan_marks_stages_done_from_what_the_directory_holds(tmp_path: Path) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path), scale=0.05)
    assert [done for _, done in recipe.plan(cfg)] == [False] * 10
    limits = cfg.limits()
    assert limits == {s.name: max(1, round(s.limit * 0.05)) for s in recipe.SOURCES}
    cal = tmp_path / "gen" / "calendar"
    cal.mkdir(parents=True)
    (cal / "stats.json").write_text(json.dumps({"texts_seen": limits["calendar"] - 1}))
    assert dict(recipe.plan(cfg))["generate calendar"] is False  # interrupted: resumes
    (cal / "stats.json").write_text(json.dumps({"texts_seen": limits["calendar"]}))
    assert dict(recipe.plan(cfg))["generate calendar"] is True
    (tmp_path / "mix.jsonl").write_text("")
    assert dict(recipe.plan(cfg))["mix"] is True


def test_the_commands_are_the_clis_own(tmp_path: Path) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path), max_steps=7)
    gen = recipe.generate_command(cfg, recipe.SOURCES[0])
    assert gen[1:4] == ["-m", "toolformer_app", "generate"] and "--dated" in gen and gen[-1].endswith("calendar")
    ft = recipe.finetune_command(cfg, "recipe-x", resume=True)
    assert "--lora" in ft and ft[ft.index("--max-steps") + 1] == "7" and ft[-1] == "--resume"
    ev = recipe.eval_command(cfg)
    assert ev[ev.index("--suites") + 1] == "math,facts,facts_plain,dates,perplexity,plain"


def test_a_rerun_with_another_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "recipe.json").write_text(json.dumps({"model": "other", "scale": 1.0, "seed": 0}))
    with pytest.raises(ValueError, match="another model"):
        recipe.run_recipe(recipe.RecipeConfig(out=str(tmp_path)))


@pytest.mark.parametrize(("message", "style", "expected"), [
    ("What is the capital of Kenya?", "paper", QA_PREFIX + "What is the capital of Kenya?"),
    ("How many is 3 + 4?", "paper", "How many is 3 + 4? The answer is"),
    ("The capital of Kenya is", "paper", LAMA_PREFIX + "The capital of Kenya is"),
    ("  How many? The answer is", "paper", "How many? The answer is"),
    ("Two shots\nthen a question?", "paper", "Two shots\nthen a question?"),
    ("What is 2 + 2?", "plain", "What is 2 + 2?"),
    ("What is 2 + 2?", "chat", "What is 2 + 2?"),
])
def test_the_papers_zero_shot_formats(message: str, style: str, expected: str) -> None:
    assert format_prompt(message, style) == expected


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt style"):
        format_prompt("x", "poetry")


def test_the_plain_suite_reads_first_sentences_of_the_held_out_extracts() -> None:
    items = suites.plain_items(5)
    held = suites.held_out_texts(5)
    assert len(items) == 5 and all(i.kind == "plain" for i in items)
    assert all(h.startswith(i.prompt) for i, h in zip(items, held, strict=True))
    (name, loaded), = load_accuracy_suites(EvalConfig(suites=("plain",), limit=3))
    assert name == "plain" and len(loaded) == 3


def test_wrong_tool_rate_counts_the_tools_that_cannot_help() -> None:
    entry = {"call_rate": {"Calculator": 0.1, "Calendar": 0.05, "QA": 0.3, "WikiSearch": 0.0}}
    assert wrong_tool_rate("facts", entry) == pytest.approx(0.15)
    assert wrong_tool_rate("math", entry) == pytest.approx(0.3)
    assert wrong_tool_rate("dates", entry) is None


def test_until_generate_runs_the_four_sources_prints_their_throughput_and_stops(tmp_path: Path, monkeypatch,
                                                                                 capsys) -> None:
    ran = []

    def fake_run(cmd: list[str], log: Path) -> None:  # a generate that only writes its stats.json
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        limit = int(cmd[cmd.index("--limit") + 1])
        per = {"texts": limit, "seconds": 2.0, "texts_per_minute": 30.0, "stage_seconds": {"positions": 2.0}}
        (out / "stats.json").write_text(json.dumps({"texts_seen": limit, "throughput": {
            "per_tool": {"Calculator": per}, "seconds": 2.0, "texts_per_minute": 30.0}}))
        ran.append(cmd[3])

    monkeypatch.setattr(recipe, "_run", fake_run)
    recipe.run_recipe(recipe.RecipeConfig(out=str(tmp_path), scale=0.05, until="generate"))
    assert ran == ["generate"] * len(recipe.SOURCES)
    assert not (tmp_path / "mix.jsonl").exists()
    printed = capsys.readouterr().out
    assert printed.count("Calculator 30.0 texts/min") == len(recipe.SOURCES)


def test_the_call_threshold_is_read_from_the_model_card(tmp_path) -> None:
    import json

    from toolformer_app import models
    from toolformer_app.ui.chat import threshold_default

    d = tmp_path / "ft"
    d.mkdir()
    (d / "adapter_config.json").write_text("{}")
    assert models.call_threshold(str(d)) is None and threshold_default(str(d)) == 0.0
    (d / models.CARD_NAME).write_text(json.dumps({"calling": {"call_threshold": 0.042}}))
    assert models.call_threshold(str(d)) == 0.042 and threshold_default(str(d)) == 0.042
    (d / models.CARD_NAME).write_text("{broken")
    assert models.call_threshold(str(d)) is None
    assert models.call_threshold("no/such/model") is None
