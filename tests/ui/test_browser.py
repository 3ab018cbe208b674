"""A real Chromium (Playwright, offline) doing the four tasks of the app."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.ui import browser_steps as steps
from tests.ui.helpers import run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_type_a_text_and_annotate_shows_highlighted_candidates(page):
    steps.annotate(page, steps.ASSETS.joinpath("examples", "orchard.txt").read_text().strip(), k=2, m=2)
    marked = page.locator("#annotate-candidates")
    expect(marked).to_contain_text("[Calculator(")
    expect(page.locator("#annotate-table")).to_contain_text("Calculator")
    expect(page.locator("#annotate-heatmap")).to_contain_text("orchard")


def test_moving_the_tau_f_slider_changes_the_kept_count(page, tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in run(reductions=(1.5, 0.8, 0.2, -0.3))["candidates"]))
    steps.load_candidates(page, path)
    kept = page.locator("#filter-kept")
    expect(kept).to_contain_text("Kept at τf = 0.30: 2 of 4")
    steps.move_tau(page, 1.0)
    expect(kept).to_contain_text("Kept at τf = 1.00: 1 of 4")
    expect(page.locator("#filter-hist")).to_contain_text("τf = 1.00")
    steps.move_tau(page, -1.0)
    expect(kept).to_contain_text("Kept at τf = -1.00: 4 of 4")


def test_launch_a_tiny_finetune_and_see_it_succeed(page):
    steps.finetune_tiny(page, steps=3, max_length=32, eval_every=3)
    expect(page.locator("#finetune-jobs")).to_contain_text("succeeded")
    expect(page.locator("#finetune-status")).to_contain_text("held-out perplexity")
    page.reload()  # the job list and the selected job come back from the job store
    steps.open_tab(page, "Finetune")
    expect(page.locator("#finetune-status")).to_contain_text("succeeded")
    expect(page.locator("#finetune-progress")).to_contain_text("step 3/3")
    steps.open_tab(page, "Chat")  # the finished checkpoint is offered as a chat model
    page.locator("#chat-model input").click()
    expect(page.get_by_role("option", name="finetune ft-").first).to_be_visible()


def test_chat_shows_a_highlighted_tool_call(page):
    steps.chat_example(page, compare=True)
    expect(page.locator("#chat-tools mark.tool-Calculator").first).to_contain_text("[Calculator(")
    expect(page.locator("#chat-plain")).to_be_visible()


def test_a_plain_arithmetic_question_calls_the_calculator_and_a_capital_question_does_not(page):
    # default settings: the shipped Toolformer, the paper's zero-shot prompt format, the card's calibrated call
    # threshold (it calls on 79% of the math suite's questions; a question under the threshold still calls at
    # k = 10, which the integration test checks with the bakery question)
    steps.chat_question(page, "A farm has 48 cows and buys 17 more. How many cows does it have now?")
    expect(page.locator("#chat-tools mark.tool-Calculator").first).to_contain_text("[Calculator(")
    page.locator("#chat-clear").click()
    expect(page.locator("#chat-stats")).not_to_contain_text("with tools")
    steps.chat_question(page, "What is the capital of Kenya?")
    expect(page.locator("#chat-tools mark.tool-Calculator")).to_have_count(0)


def test_an_unticked_tool_cannot_be_written(page):
    # WikiSearch unticked: its name is not in the trie the model decodes tool names from
    steps.chat_tools(page, ("Calculator", "Calendar", "QA", "MT"))
    steps.chat_question(page, "The capital of Kenya is")
    expect(page.locator("#chat-tools")).not_to_contain_text("[WikiSearch(")
    expect(page.locator("#chat-tools mark.tool-WikiSearch")).to_have_count(0)


def test_a_capital_question_reaches_qa_and_gets_the_answer(page):
    # default settings: the shipped model, whose card has the decoder write QA's input (the clause so far) and
    # calls QA when p(" [") reaches QA's own calibrated threshold
    steps.chat_question(page, "What is the capital of Australia?")
    call = page.locator("#chat-tools mark.tool-QA").first
    expect(call).to_contain_text("[QA(")
    expect(call).to_contain_text("Canberra")
    expect(page.locator("#chat-tools")).to_contain_text("input written by the decoder")  # the bubble's title
    expect(page.locator("#chat-tools")).not_to_contain_text("(no answer")  # the model went on after the call


def test_a_statement_to_complete_is_answered_and_reaches_qa_at_the_papers_k(page):
    # at the calibrated default the model answers "Nairobi" itself (p(" [") under QA's threshold); with the
    # threshold at 0 (the paper's top-k) it asks QA
    steps.chat_question(page, "The capital of Kenya is")
    expect(page.locator("#chat-tools")).to_contain_text("Nairobi")
    page.locator("#chat-clear").click()
    steps.set_number(page, "chat-threshold", 0)
    steps.chat_question(page, "The capital of Kenya is")
    call = page.locator("#chat-tools mark.tool-QA").first
    expect(call).to_contain_text("[QA(The capital of Kenya is)")
    expect(call).to_contain_text("Nairobi")


def test_an_arithmetic_example_the_tab_offers_is_answered_right_and_a_known_failure_says_so(page):
    steps.chat_example(page, example="A box holds 12 eggs")
    expect(page.locator("#chat-tools mark.tool-Calculator").first).to_contain_text("420")
    expect(page.get_by_role("button", name="Known failure (wrong operation): The farm has 48 cows")).to_be_visible()
