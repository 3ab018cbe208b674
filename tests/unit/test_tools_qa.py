"""QA: retrieval, the reader prompt, answer cleaning, and the extractive-model path (tiny random BERT)."""

from __future__ import annotations

import pytest

from toolformer_app.tools import qa as qa_module
from toolformer_app.tools.qa import COMPLETION_SHOTS, QA, build_prompt, clean_answer, is_question


@pytest.fixture
def fake_lm(monkeypatch):
    """models.load and the LM reader replaced: records the (last) prompt, answers with ``reply``."""
    from toolformer_app import models
    from toolformer_app.tools import _lm

    seen: dict = {"reply": " Gustave Eiffel. He was an engineer.\n", "batches": []}

    def complete_many(model, tok, prompts, max_new_tokens, stop="\n", prefix=None):
        seen["batches"].append(list(prompts))
        seen.update(prompt=prompts[-1], max_new_tokens=max_new_tokens[-1], model=model)
        return [seen["reply"]] * len(prompts)

    monkeypatch.setattr(models, "load", lambda name=None, **kw: (f"model:{name}", "tok"))
    monkeypatch.setattr(_lm, "greedy_complete_many", complete_many)
    return seen


def test_reads_the_retrieved_passages_and_answers_in_a_few_words(fake_lm):
    result = QA().run('"Who designed the Eiffel Tower?"')
    assert result.output == "Gustave Eiffel"
    prompt = fake_lm["prompt"]
    assert prompt.endswith("Question: Who designed the Eiffel Tower?\nShort answer:")
    assert "The Eiffel Tower is a lattice tower" in prompt.split("Context: ")[-1]
    assert fake_lm["max_new_tokens"] == 12
    assert fake_lm["model"] == "model:smollm2-135m"  # config.default_model()


def test_uses_the_configured_reader_model(fake_lm):
    QA(model_name="gemma3-270m").run("Who designed the Eiffel Tower?")
    assert fake_lm["model"] == "model:gemma3-270m"


def test_an_empty_reply_gives_a_reason(fake_lm):
    fake_lm["reply"] = ""
    result = QA().run("Who designed the Eiffel Tower?")
    assert result.output is None and "no answer" in result.reason


def test_retrieves_from_a_user_corpus(fake_lm, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("Brask has two bakeries.\nGlimmerfish glow.\n", encoding="utf-8")
    QA(corpus_path=str(path)).run("How many bakeries does Brask have?")
    assert "Context: Brask has two bakeries.\nQuestion" in fake_lm["prompt"]


@pytest.mark.parametrize("question, reason", [("", "empty question"), ("qwxzzyq?", "no passage")])
def test_unanswerable_input_gives_a_reason(question, reason):
    result = QA().run(question)
    assert result.output is None and reason in result.reason


def test_a_model_that_fails_to_load_gives_a_reason(monkeypatch):
    from toolformer_app import models

    def broken(name=None, **kw):
        raise models.ModelLoadError("could not load 'x'")

    monkeypatch.setattr(models, "load", broken)
    result = QA().run("Who designed the Eiffel Tower?")
    assert result.output is None and "could not load" in result.reason


@pytest.mark.parametrize(
    "raw, answer",
    [(" Paris.\nQuestion: x", "Paris"), (" 3.5 metres tall.", "3.5 metres tall"), (' "Canberra"', "Canberra"),
     ("\n Lima\nQuestion: x", "Lima")],  # an answer on the next line (the reader after a completion)
)
def test_clean_answer_cuts_at_newline_or_period(raw, answer):
    assert clean_answer(raw) == answer


def test_prompt_has_three_solved_examples_then_the_question():
    prompt = build_prompt("Q?", ["P1.", "P2."])
    assert prompt.count("Short answer:") == 4
    assert prompt.endswith("Context: P1. P2.\nQuestion: Q?\nShort answer:")


def test_a_statement_is_completed_after_the_context():
    assert not is_question("The capital of Peru is") and is_question("What is the capital of Peru? ")
    prompt = build_prompt("The capital of Peru is ", ["Lima is the capital of Peru."])
    assert prompt.startswith(COMPLETION_SHOTS) and "Short answer:" not in prompt
    assert prompt.endswith("Context: Lima is the capital of Peru.\nThe capital of Peru is")


def test_a_completion_answer_ends_at_its_first_comma():
    assert clean_answer(" Jonathan Swift, published in 1726, and", completion=True) == "Jonathan Swift"
    assert clean_answer(" Jonathan Swift, published in 1726") == "Jonathan Swift, published in 1726"


def test_passages_are_cut_to_keep_the_prompt_short():
    assert all(len(p) <= 120 for p in QA(passage_chars=120).retrieve("Eiffel Tower"))
    assert len(QA(n_passages=2).retrieve("Eiffel Tower")) == 2


# -- extractive reader (hf_qa_model) ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_extractive(tmp_path_factory) -> str:
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    path = tmp_path_factory.mktemp("tiny_qa")
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] who designed the eiffel tower gustave was built by engineer in paris"
    (path / "vocab.txt").write_text("\n".join(words.split()) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words.split()), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=512)
    BertForQuestionAnswering(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_extractive_reader_returns_a_span_of_the_context(tiny_extractive):
    result = QA(hf_qa_model=tiny_extractive, corpus_path=None).run("Who designed the Eiffel Tower?")
    assert result.ok
    passages = " ".join(QA().retrieve("Who designed the Eiffel Tower?"))
    assert result.output in passages  # random weights: some span, but always from the context


def test_extractive_answer_is_at_most_max_answer_tokens(tiny_extractive):
    model, tok = qa_module._load_extractive(tiny_extractive)
    context = "The Eiffel tower was built by the engineer Gustave Eiffel in Paris."
    answer = qa_module.extractive_answer(model, tok, "Who designed the Eiffel Tower?", context, max_answer_tokens=2)
    assert answer and answer in context and len(answer.split()) <= 2


def test_many_questions_share_one_reader_batch_and_keep_their_order(fake_lm):
    results = QA().run_many(["Who designed the Eiffel Tower?", "", "qwxzzyq?", "What is the capital of France?"])
    assert len(fake_lm["batches"]) == 1 and len(fake_lm["batches"][0]) == 2  # only the answerable ones
    assert fake_lm["batches"][0][0].endswith("Question: Who designed the Eiffel Tower?\nShort answer:")
    assert [r.output for r in results] == ["Gustave Eiffel", None, None, "Gustave Eiffel"]
    assert "empty question" in results[1].reason and "no passage" in results[2].reason
