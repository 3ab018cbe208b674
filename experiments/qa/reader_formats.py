"""QA's reader prompt, measured on the QA dev set (facts outside the suites); the chosen format shipped at commit
329c407.

    python experiments/qa/reader_formats.py [LIMIT]

The retriever (BM25, 3 passages) puts a gold answer in the passages for 80% of the first 40 dev facts, the reader
in its answer for 22.5% (`python -m toolformer_app.evaluation.qa_check --set dev --limit 40`). Each variant
below reads the same passages; prints the share of answers holding a gold answer.
"""

import sys

from toolformer_app import config, models
from toolformer_app.evaluation.qa_check import _holds, dev_items
from toolformer_app.evaluation.suites import FACTS_PREFIX
from toolformer_app.tools import _lm, get_tool
from toolformer_app.tools import qa as qa_lib
from toolformer_app.tools.wikisearch import clean_query

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
items = dev_items()[:limit]
tool = get_tool("QA")
model, tok = models.load(config.default_model())
questions = [clean_query(it.prompt.removeprefix(FACTS_PREFIX)) for it in items]
passages = [tool.retrieve(q) for q in questions]

# Completion-style shots: the reader continues the statement after the context, as a base LM does best.
COMPLETION_SHOTS = "".join(f"Context: {c}\n{s} {a}.\n\n" for c, s, a in (
    ("The Amazon is a river in South America. It carries more water than any other river.",
     "The Amazon is a river in", "South America"),
    ("Vincent van Gogh was a Dutch painter. He painted The Starry Night in 1889 in Saint-Rémy.",
     "The Starry Night was painted by", "Vincent van Gogh"),
    ("Mount Kilimanjaro is a dormant volcano in Tanzania. It is the highest mountain in Africa.",
     "The highest mountain in Africa is", "Mount Kilimanjaro"),
))


def score(name: str, prompts: list[str], prefix: str) -> None:
    raws = _lm.greedy_complete_many(model, tok, prompts, [12] * len(prompts), prefix=prefix)
    answers = [qa_lib.clean_answer(r) for r in raws]
    hits = sum(_holds(a, it.answers) for a, it in zip(answers, items, strict=True))
    print(f"{name}: {hits}/{len(items)} = {hits / len(items):.3f}   e.g. {answers[:6]}", flush=True)


def qa_prompt(q: str, ps: list[str]) -> str:
    return qa_lib.build_prompt(q, ps)


def completion_prompt(q: str, ps: list[str]) -> str:
    return f"{COMPLETION_SHOTS}Context: {' '.join(ps)}\n{q}"


ceiling = sum(_holds(" ".join(ps), it.answers) for ps, it in zip(passages, items, strict=True))
print(f"gold answer in the 3 passages: {ceiling}/{len(items)}")
score("today (Question / Short answer, best passage first)", [qa_prompt(q, ps) for q, ps in zip(questions, passages, strict=True)],
      qa_lib.READER_SHOTS)
score("best passage last", [qa_prompt(q, ps[::-1]) for q, ps in zip(questions, passages, strict=True)], qa_lib.READER_SHOTS)
score("one passage", [qa_prompt(q, ps[:1]) for q, ps in zip(questions, passages, strict=True)], qa_lib.READER_SHOTS)
score("completion style", [completion_prompt(q, ps) for q, ps in zip(questions, passages, strict=True)], COMPLETION_SHOTS)
score("completion style, best last", [completion_prompt(q, ps[::-1]) for q, ps in zip(questions, passages, strict=True)],
      COMPLETION_SHOTS)
score("completion style, one passage", [completion_prompt(q, ps[:1]) for q, ps in zip(questions, passages, strict=True)],
      COMPLETION_SHOTS)
