"""QA: an Atlas-like retrieval-augmented reader (paper, section 3: Atlas finetuned on Natural Questions).

BM25 retrieves the top passages (the WikiSearch corpus), then a reader answers in a few words:
by default the causal LM (``models.load``) with a short "Context / Question / Short answer" prompt
and greedy decoding; or, if ``hf_qa_model`` is set, an extractive question-answering model
(AutoModelForQuestionAnswering; transformers 5 has no "question-answering" pipeline any more).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from toolformer_app import config
from toolformer_app.calls import linearize
from toolformer_app.tools.base import Thresholds, Tool, ToolResult
from toolformer_app.tools.corpus import CorpusError, Exclusion, knowledge_corpus, load_corpus, truncate_words
from toolformer_app.tools.wikisearch import clean_query


def _ex(before: str, question: str, answer: str, after: str) -> tuple[str, str]:
    return before + after, before + linearize("QA", f'"{question}"', answer) + after


EXAMPLES: tuple[tuple[str, str], ...] = (
    _ex("The capital city of Australia is", "What is the capital of Australia?", "Canberra", " Canberra."),
    _ex(  # never a facts-suite fact (the suite once asked "Pride and Prejudice is a novel by")
        "The Starry Night was painted in 1889 by",
        "Who painted The Starry Night?",
        "Vincent van Gogh",
        " Vincent van Gogh, in Saint-Rémy.",
    ),
    _ex(
        "At sea level, water boils at",
        "At what temperature does water boil at sea level?",
        "100 degrees Celsius",
        " 100 degrees Celsius.",
    ),
    _ex("The Nile flows north into the", "Into which sea does the Nile flow?", "the Mediterranean Sea",
        " Mediterranean Sea."),
)

INSTRUCTION = (
    "Your task is to add calls to a Question Answering API to a piece of text. The questions should help "
    "you get information required to complete the text. You can call the API by writing \"[QA(question)]\" "
    "where \"question\" is the question you want to ask. Here are some examples of API calls:"
)

_ANSWER_END = re.compile(r"\n|\.(?:\s|$)")  # a period ends the answer, but not the one in "3.5"
_QA_MODELS: dict[str, tuple[Any, Any]] = {}
_QA_LOCK = threading.Lock()


# Short shots: without them a small instruct model starts its answer with a newline or a whole
# sentence; with them it answers on the same line, in a few words. The last one is a completion, as the
# model's own calls often are ("[QA(The capital of Peru is)]"). None is a facts-suite fact.
_SHOTS = (
    ("The Amazon is a river in South America. It carries more water than any other river.",
     "On which continent is the Amazon?", "South America"),
    ("Vincent van Gogh was a Dutch painter. He painted The Starry Night in 1889 in Saint-Rémy.",
     "Who painted The Starry Night?", "Vincent van Gogh"),
    ("Mount Kilimanjaro is a dormant volcano in Tanzania. It is the highest mountain in Africa.",
     "The highest mountain in Africa is", "Mount Kilimanjaro"),
)


# Every reader prompt starts with solved examples: their KV cache is computed once (``_lm``). A question
# ("…?") is read as "Question: … Short answer:"; a statement to complete ("The capital of Peru is", the way
# the model's own calls are often written) is continued after the context, as a base LM does best: on the QA
# dev set (facts outside the suites, 80 items) the gold answer came back for 23 with the question format and 3
# passages, 58 with the completion format and 1 passage (`experiments/qa/reader_formats.py`).
READER_SHOTS = "".join(f"Context: {c}\nQuestion: {q}\nShort answer: {a}\n\n" for c, q, a in _SHOTS)
COMPLETION_SHOTS = "".join(f"Context: {c}\n{s} {a}.\n\n" for c, s, a in (
    ("The Amazon is a river in South America. It carries more water than any other river.",
     "The Amazon is a river in", "South America"),
    ("Vincent van Gogh was a Dutch painter. He painted The Starry Night in 1889 in Saint-Rémy.",
     "The Starry Night was painted by", "Vincent van Gogh"),
    ("Mount Kilimanjaro is a dormant volcano in Tanzania. It is the highest mountain in Africa.",
     "The highest mountain in Africa is", "Mount Kilimanjaro"),
))


def is_question(text: str) -> bool:
    """A question ends with "?"; anything else is a statement for the reader to complete."""
    return text.rstrip().endswith("?")


def reader_shots(question: str) -> str:
    """The solved examples that start the reader's prompt for this input."""
    return READER_SHOTS if is_question(question) else COMPLETION_SHOTS


def build_prompt(question: str, passages: list[str]) -> str:
    """The reader's prompt: solved examples, then "Context: ...\nQuestion: ...\nShort answer:" for a question,
    or "Context: ...\n<the statement>" for a statement to complete."""
    context = " ".join(passages)
    if is_question(question):
        return f"{READER_SHOTS}Context: {context}\nQuestion: {question}\nShort answer:"
    return f"{COMPLETION_SHOTS}Context: {context}\n{question.rstrip()}"


def clean_answer(text: str, completion: bool = False) -> str:
    """The answer up to the first newline or sentence-ending period (for a completion also the first comma:
    "Jonathan Swift, published in 1726"), without quotes."""
    answer = _ANSWER_END.split(text.lstrip(), 1)[0]  # an answer that starts on the next line is still one
    if completion:
        answer = answer.split(", ", 1)[0]
    return answer.strip().strip("\"'").strip()


def _load_extractive(name: str) -> tuple[Any, Any]:
    with _QA_LOCK:
        if name not in _QA_MODELS:
            from transformers import AutoModelForQuestionAnswering, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(name)
            model = AutoModelForQuestionAnswering.from_pretrained(name).eval()
            _QA_MODELS[name] = (model, tok)
        return _QA_MODELS[name]


def extractive_answer(model: Any, tokenizer: Any, question: str, context: str, max_answer_tokens: int = 15) -> str:
    """The best context span by start + end logit (start <= end < start + max_answer_tokens)."""
    import torch

    enc = tokenizer(
        question, context, truncation="only_second", max_length=384, return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = enc.pop("offset_mapping")[0].tolist()
    seq_ids = enc.sequence_ids(0)
    enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        out = model(**enc)
    start, end = out.start_logits[0].float(), out.end_logits[0].float()
    ctx = [i for i, s in enumerate(seq_ids) if s == 1]
    if not ctx:
        return ""
    best, span = float("-inf"), (ctx[0], ctx[0])
    for i in ctx:  # O(n * max_answer_tokens): contexts are at most 384 tokens
        for j in ctx:
            if i <= j < i + max_answer_tokens:
                score = float(start[i] + end[j])
                if score > best:
                    best, span = score, (i, j)
    return context[offsets[span[0]][0] : offsets[span[1]][1]].strip()


@dataclass
class QA(Tool):
    """Answers a question in a few words from the top-``n_passages`` BM25 passages."""

    name: str = "QA"
    description: str = "Answers a question in a few words, reading the best Wikipedia passages (BM25 + LM)."
    instruction: str = INSTRUCTION
    examples: tuple[tuple[str, str], ...] = EXAMPLES
    # Paper: tau_s=0.05, k=5, m=5, tau_f=1.0; lowered for a 135M model (p(" [") peaks ~0.01, gains 0.3-1.2).
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.005, k=5, m=5, tau_f=0.3))
    model_name: str | None = None  # causal LM reader; None: config.default_model()
    hf_qa_model: str | None = None  # an extractive QA model (hub id or directory) instead of the LM
    corpus_path: str | None = None  # None: the embedded Wikipedia extracts and the country almanac
    n_passages: int = 1  # the best passage alone: 58 / 80 dev answers against 55 / 80 with 3 (completions)
    passage_chars: int = 500  # each passage is cut so the prompt stays short on CPU
    max_new_tokens: int = 12
    # Leave-one-out while annotating (``for_document``): a text's own article is never returned, so a
    # call cannot pass tau_f by retrieving the very sentence that follows it. Users' searches see all.
    exclude: Exclusion = field(default_factory=Exclusion)

    def for_document(self, meta: dict | None) -> Tool:
        exclude = Exclusion.for_document(meta, embedded=not self.corpus_path)
        return replace(self, exclude=exclude) if exclude else self

    def retrieve(self, question: str) -> list[str]:
        corpus = load_corpus(self.corpus_path) if self.corpus_path else knowledge_corpus()
        hits = corpus.search(question, self.n_passages, self.exclude)
        return [truncate_words(p, self.passage_chars) for _, p in hits]

    def run(self, input: str) -> ToolResult:
        return self.run_many([input])[0]

    def run_many(self, inputs: list[str]) -> list[ToolResult]:
        """Answers in order: retrieval per question, then the LM reader on all prompts in batches."""
        results: list[ToolResult | None] = [None] * len(inputs)
        prompts: dict[int, str] = {}
        for n, raw_input in enumerate(inputs):
            question = clean_query(raw_input or "")
            if not question:
                results[n] = ToolResult(None, "empty question")
                continue
            try:
                passages = self.retrieve(question)
                if not passages:
                    results[n] = ToolResult(None, f"no passage matches {question!r}")
                elif self.hf_qa_model:
                    model, tok = _load_extractive(self.hf_qa_model)
                    answer = extractive_answer(model, tok, question, " ".join(passages))
                    results[n] = ToolResult(answer) if answer else ToolResult(None, "the reader gave no answer")
                else:
                    prompts[n] = build_prompt(question, passages)
            except CorpusError as exc:
                results[n] = ToolResult(None, str(exc))
            except Exception as exc:  # model load or reader failure: a reason, never an exception
                results[n] = ToolResult.failure("QA", exc)
        if prompts:
            try:
                from toolformer_app import models
                from toolformer_app.tools import _lm

                model, tok = models.load(self.model_name or config.default_model())
                for shots in (READER_SHOTS, COMPLETION_SHOTS):  # each style's examples cached once
                    group = [n for n, p in prompts.items() if p.startswith(shots)]
                    if not group:
                        continue
                    raws = _lm.greedy_complete_many(model, tok, [prompts[n] for n in group],
                                                    [self.max_new_tokens] * len(group), prefix=shots)
                    for n, raw in zip(group, raws, strict=True):
                        answer = clean_answer(raw, completion=shots is COMPLETION_SHOTS)
                        results[n] = ToolResult(answer) if answer else ToolResult(None, "the reader gave no answer")
            except Exception as exc:
                for n in prompts:
                    results[n] = ToolResult.failure("QA", exc)
        return results  # type: ignore[return-value]

