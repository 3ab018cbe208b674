"""``PipelineConfig.clause_calls``: one more candidate per chosen position, its input the clause so far."""

from __future__ import annotations

from collections import Counter

from toolformer_app.pipeline.config import PipelineConfig
from toolformer_app.pipeline.positions import encode_text
from toolformer_app.pipeline.sampling import clause_before, clause_candidate
from toolformer_app.tools import get_tool


def test_the_clause_starts_after_the_last_sentence_or_clause_end():
    text = "Kenya lies in East Africa. Its capital, Nairobi, is 3.5 km above: the sea level of the"
    assert clause_before(text, len(text)) == "the sea level of the"
    cut = text.index(" is 3.5")
    assert clause_before(text, cut) == "Its capital, Nairobi,"  # commas do not end a clause; "3.5" is not a period
    assert clause_before("No end here at all", 11) == "No end here"
    assert len(clause_before("word " * 100, 500).split()) == 24  # its last words only


def test_a_clause_candidate_is_the_clause_unless_short_or_already_sampled(real_tokenizer):
    text = "Lake Victoria borders three countries. Nairobi is the capital and largest city of Kenya."
    enc = encode_text(real_tokenizer, "t", text)
    pos = next(i for i, s in enumerate(enc.char_starts) if text[s:].startswith(" Kenya"))
    counts: Counter = Counter()
    qa = get_tool("QA")
    (cand,) = clause_candidate(enc, qa, pos, 0.01, [], counts)
    assert cand.input == "Nairobi is the capital and largest city of" and cand.tool == "QA"
    assert cand.token_pos == pos and cand.char_pos == enc.char_starts[pos] and counts["clause_calls"] == 1
    assert clause_candidate(enc, qa, pos, 0.01, [cand], counts) == []  # the model sampled the same input
    early = next(i for i, s in enumerate(enc.char_starts) if text[s:].startswith(" is the capital"))
    assert clause_candidate(enc, qa, early, 0.01, [], counts) == []  # "Nairobi": under 3 words
    assert counts["clause_calls"] == 1


def test_clause_calls_default_to_none_as_in_the_paper():
    assert PipelineConfig().clause_calls == ()


def test_a_saved_config_reads_back_equal_so_a_resumed_run_is_recognised():
    import json

    for cfg in (PipelineConfig(), PipelineConfig(tools=("QA",), clause_calls=("QA",))):
        saved = json.loads(json.dumps(cfg.to_dict()))
        assert saved == cfg.to_dict()  # the resume check compares these dicts
        assert PipelineConfig.from_dict(saved) == cfg
