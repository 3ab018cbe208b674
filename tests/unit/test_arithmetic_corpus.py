"""The seeded arithmetic corpus: reproducible, correct numbers, mostly selected by A.1, unlike the eval suite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from toolformer_app.pipeline.arithmetic import STEP_TEMPLATES, TEMPLATES, arithmetic_texts, steps_texts
from toolformer_app.pipeline.corpus import load_texts
from toolformer_app.tools.calculator import Calculator, evaluate

EVAL_MATH = Path(__file__).resolve().parents[2] / "assets" / "eval" / "math.jsonl"


def test_same_seed_same_texts_and_ids_are_unique() -> None:
    a, b = arithmetic_texts(100), arithmetic_texts(100)
    assert a == b
    assert len({i for i, _ in a}) == len({t for _, t in a}) == 100
    assert arithmetic_texts(50, seed=1) != arithmetic_texts(50, seed=2)


@pytest.mark.parametrize("templates", [TEMPLATES, STEP_TEMPLATES], ids=["arithmetic", "steps"])
def test_every_template_states_its_own_result(templates) -> None:
    # Rebuild each text from its template with the same random state and check the stated number.
    import random

    for template in templates:
        rng = random.Random(7)
        for _ in range(20):
            body, expression = template(rng)
            value = evaluate(expression)
            assert value >= 0
            numbers = [n for n in re.findall(r"\d+(?:\.\d+)?", expression) if n != "100"]  # 100: percent
            assert all(n in body for n in numbers), (template.__name__, expression, body)
            assert "{r}" in body and body.index("{r}") > min(body.index(n) for n in numbers)


def test_most_texts_pass_the_calculator_heuristic() -> None:
    texts = [t for _, t in arithmetic_texts(160)]
    selected = sum(Calculator().selects(t) for t in texts)
    assert selected >= 0.7 * len(texts)


def test_every_steps_text_reaches_the_calculator_and_its_call_uses_only_past_numbers() -> None:
    # Two- and three-step texts hold no a op b = c triple; A.1's keywords ("a total of", "average of",
    # "equal to") select them, and the call that computes the stated number passes inputs-from-the-past.
    import random

    from toolformer_app.tools.calculator import format_number, inputs_from_past

    for template in STEP_TEMPLATES:
        rng = random.Random(11)
        for _ in range(10):
            body, expression = template(rng)
            text = body.replace("{r}", format_number(evaluate(expression)))
            assert Calculator().selects(text), text
            assert inputs_from_past(body[: body.index("{r}")], expression), (expression, body)
    ops = {op for template in STEP_TEMPLATES for op in template(random.Random(0))[1] if op in "+-*/"}
    assert ops == set("+-*/")


@pytest.mark.parametrize("corpus", [arithmetic_texts, steps_texts], ids=["arithmetic", "steps"])
def test_no_text_shares_the_eval_suites_prompt_form(corpus) -> None:
    prompts = [json.loads(line)["prompt"] for line in EVAL_MATH.read_text().splitlines()]
    texts = [t for _, t in corpus(400)]
    assert not any("The answer is" in t or "?" in t for t in texts)
    body_starts = {p.split(".")[0] for p in prompts}
    assert not any(t.split(".")[0] in body_starts for t in texts)


def test_generate_loads_the_arithmetic_corpus() -> None:
    items = load_texts(arithmetic=True, limit=12)
    assert len(items) == 12 and items == arithmetic_texts(12)
    assert items[0][0] == "arith:0"
    steps = load_texts(steps=True, limit=5)
    assert steps == steps_texts(5) and steps[0][0] == "steps:0"


def test_generate_refuses_a_limit_below_one(capsys) -> None:
    from toolformer_app.cli import main

    assert main(["generate", "--arithmetic", "--limit", "0", "--out", "unused"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
