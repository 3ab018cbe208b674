"""The recipe's stages and resume plan, the paper's prompt formats, and the `plain` eval suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolformer_app import recipe
from toolformer_app.decoding import LAMA_PREFIX, QA_PREFIX, format_prompt
from toolformer_app.evaluation import suites
from toolformer_app.evaluation.config import EvalConfig
from toolformer_app.evaluation.report import wrong_tool_rate
from toolformer_app.evaluation.runner import load_accuracy_suites


def test_the_plan_marks_stages_done_from_what_the_directory_holds(tmp_path: Path) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path), scale=0.05)
    assert [done for _, done in recipe.plan(cfg)] == [False] * (len(recipe.SOURCES) + 6)
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
    assert "--kl-weight" not in ft  # off by default: the command the shipped run used
    kl = recipe.finetune_command(recipe.RecipeConfig(out=str(tmp_path), kl_weight=0.5), "recipe-x", resume=False)
    assert kl[kl.index("--kl-weight") + 1] == "0.5"


def test_scale_one_runs_exactly_the_full_recipe(tmp_path: Path) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path))
    assert cfg.limits() == {s.name: s.limit for s in recipe.SOURCES} and cfg.texts_fraction() == 1.0
    assert cfg.effective() == {"scaled": False, "texts_fraction": 1.0, "limits": cfg.limits(), "max_steps": 236,
                               "eval_every": 50, "save_every": 50, "eval_limit": 100, "calibrate_n": 100}
    ft = recipe.finetune_command(cfg, "recipe-x", resume=False)
    assert ft[ft.index("--max-steps") + 1] == "236" and "--eval-every" not in ft and "--save-every" not in ft
    assert ft[ft.index("--clause-inputs") + 1] == "QA"  # the country source makes QA clause calls
    cal = recipe.calibrate_command(cfg)
    assert "--per-tool" in cal and cal[cal.index("--qa-skip") + 1] == "128"
    assert recipe.eval_command(cfg)[-4:] == ["100", "--quiet", "--out", str(tmp_path / "eval")]
    assert "--n" not in recipe.calibrate_command(cfg)
    cal = recipe.calibrated_eval_command(cfg, 0.1)
    assert cal[cal.index("--limit") + 1] == "100"
    # --max-steps and --eval-limit below the floors are kept as given at scale 1
    small = recipe.RecipeConfig(out=str(tmp_path), max_steps=2, eval_limit=5)
    assert (small.finetune_steps(), small.eval_every(), small.effective_eval_limit()) == (2, 50, 5)


def test_the_recipes_constants_are_the_finetunes_and_calibrates_defaults() -> None:
    import inspect

    from toolformer_app.evaluation import calibrate
    from toolformer_app.training.options import FinetuneConfig

    assert (FinetuneConfig.eval_every, FinetuneConfig.save_every) == (recipe.FINETUNE_EVAL_EVERY,
                                                                     recipe.FINETUNE_SAVE_EVERY)
    assert inspect.signature(calibrate.calibrate).parameters["n"].default == recipe.CALIBRATE_N


@pytest.mark.parametrize(("scale", "steps", "every", "eval_limit", "calibrate_n"), [
    (0.05, 12, 3, 20, 20),  # eval and calibration floored at 20
    (0.25, 59, 12, 25, 25),
])
def test_a_scaled_run_keeps_the_full_runs_epochs_and_floors_its_eval(tmp_path: Path, scale: float, steps: int,
                                                                       every: int, eval_limit: int,
                                                                       calibrate_n: int) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path), scale=scale)
    e = cfg.effective()
    assert (e["max_steps"], e["eval_every"], e["save_every"], e["eval_limit"], e["calibrate_n"]) == (
        steps, every, every, eval_limit, calibrate_n)
    assert e["scaled"] and e["texts_fraction"] == pytest.approx(scale, rel=0.05)
    # the mix grows with the texts read (call texts from them, call-free ones a fixed ratio of those)
    full_rows = 961  # the shipped mix: the other tools' 651 rows + QA's 310
    full_epochs = 236 * cfg.batch_size / full_rows
    epochs = steps * cfg.batch_size / (full_rows * cfg.texts_fraction())
    assert epochs == pytest.approx(full_epochs, rel=0.10)
    ft = recipe.finetune_command(cfg, "recipe-x", resume=False)
    assert ft[ft.index("--max-steps") + 1] == str(steps)
    assert ft[ft.index("--eval-every") + 1] == ft[ft.index("--save-every") + 1] == str(every)
    ev = recipe.eval_command(cfg)
    assert ev[ev.index("--limit") + 1] == str(eval_limit)
    cal = recipe.calibrate_command(cfg)
    assert cal[cal.index("--n") + 1] == str(calibrate_n)
    assert cal[cal.index("--skip") + 1] == str(cfg.limits()["calculator"])
    cev = recipe.calibrated_eval_command(cfg, 0.1)
    assert cev[cev.index("--limit") + 1] == str(eval_limit)


def test_a_larger_scale_never_evaluates_more_than_the_full_run(tmp_path: Path) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path), scale=2.0)
    assert cfg.finetune_steps() == 472 and cfg.eval_every() == 100  # more texts, the same epochs
    assert (cfg.effective_eval_limit(), cfg.calibrate_n()) == (100, 100)  # more items would reach the dev split


def test_the_card_of_a_scaled_run_says_so(tmp_path: Path) -> None:
    cfg = recipe.RecipeConfig(out=str(tmp_path), scale=0.05)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "toolformer_card.json").write_text(json.dumps({"data": {"sha256": "x"}}))
    (tmp_path / "mix.stats.json").write_text(json.dumps({"with_calls": 4, "plain": 24, "plain_ratio": 6.0,
                                                        "calls_per_tool": {}, "texts_per_source": {}}))
    for s in recipe.SOURCES:
        (tmp_path / "gen" / s.name).mkdir(parents=True)
        (tmp_path / "gen" / s.name / "stats.json").write_text(json.dumps({"per_tool": {}}))
    recipe.write_card(cfg, {"finetune": 60.0})
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "Scaled run (`--scale 0.05`)" in card and "learned no call" in card
    assert "12 steps, about 3.4 epochs over the mix" in card and "`eval --limit 20`" in card


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


def test_until_generate_runs_every_source_prints_their_throughput_and_stops(tmp_path: Path, monkeypatch,
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
    assert printed.startswith("scaled run (--scale 0.05): ")
    saved = json.loads((tmp_path / "recipe.json").read_text())  # the full run's settings, and what ran
    assert saved["max_steps"] == 236 and saved["effective"]["max_steps"] == 12
    assert saved["effective"]["eval_limit"] == 20 and saved["effective"]["limits"]["calendar"] == 15


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
