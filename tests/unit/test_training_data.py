"""Finetune inputs: JSONL validation, hyperparameter checks, result masking, windows and padding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.helpers import default_tokenizer
from toolformer_app.training import data as tdata
from toolformer_app.training.options import FinetuneConfig, TrainingInputError, validate_hyperparameters

CALC = "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test."


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


# ---------------------------------------------------------------- file validation


def test_missing_file(tmp_path):
    with pytest.raises(TrainingInputError, match="does not exist"):
        tdata.load_texts(tmp_path / "nope.jsonl")


def test_no_path():
    with pytest.raises(TrainingInputError, match="no data file"):
        tdata.load_texts("")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(TrainingInputError, match="not a file"):
        tdata.load_texts(tmp_path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(TrainingInputError, match="is empty"):
        tdata.load_texts(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "\xff\xfe"}\n')
    with pytest.raises(TrainingInputError, match="UTF-8"):
        tdata.load_texts(path)


def test_all_lines_malformed_names_the_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["{not json", '{"text": "unterminated'])
    with pytest.raises(TrainingInputError, match=r"no valid JSON line \(malformed: 1, 2\)"):
        tdata.load_texts(path)


def test_some_malformed_lines_are_skipped_and_reported(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": CALC}, "{broken", {"text": "plain text, no call"}, "[1, 2"])
    loaded = tdata.load_texts(path)
    assert loaded.texts == [CALC, "plain text, no call"]
    assert loaded.skipped_malformed == [2, 4]
    assert loaded.texts_with_calls == 1 and loaded.calls_per_tool == {"Calculator": 1}
    assert "skipped 2 malformed JSON line(s): 2, 4" in loaded.warnings()[0]
    assert loaded.summary()["skipped_malformed"] == 2 and len(loaded.sha256) == 64


def test_u2028_inside_a_text_does_not_split_the_line(tmp_path):
    """The app's writers leave U+2028 raw (ensure_ascii=False): the loader splits at "\\n" only."""
    path = tmp_path / "d.jsonl"
    rows = [json.dumps({"text": CALC + "\u2028second line"}, ensure_ascii=False), json.dumps({"original": CALC}),
            json.dumps({"text": CALC}), "{broken"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded = tdata.load_texts(path)
    assert loaded.texts == [CALC + "\u2028second line", CALC]
    assert loaded.skipped_malformed == [4] and loaded.skipped_no_text == [2]


def test_deeply_nested_and_lone_surrogate_lines_are_malformed_not_a_crash(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["[" * 100_000 + "]" * 100_000, '{"text": "x \\ud800 y"}', {"text": CALC}])
    loaded = tdata.load_texts(path)
    assert loaded.texts == [CALC] and loaded.skipped_malformed == [1, 2]


def test_no_text_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"original": CALC}, {"text": 3}, {"text": "  "}, [CALC]])
    with pytest.raises(TrainingInputError, match='no line has a "text" string field'):
        tdata.load_texts(path)


def test_no_api_calls(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "Just text."}, {"text": "An unclosed [Calculator(1 + 2) -> 3"}])
    with pytest.raises(TrainingInputError, match="none of the 2 texts holds an API call"):
        tdata.load_texts(path)


def test_pipeline_rows_are_accepted(tmp_path):
    row = {"text": CALC, "original": "Out of 1400 participants, 400 29% passed the test.",
           "calls": [{"tool": "Calculator", "input": "400 / 1400", "result": "0.29"}]}
    loaded = tdata.load_texts(write_jsonl(tmp_path / "d.jsonl", [row]))
    assert loaded.texts == [CALC] and not loaded.warnings()


# ---------------------------------------------------------------- hyperparameters and split


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rate": 0.0}, "learning rate must be > 0"),
        ({"learning_rate": -1e-5}, "learning rate must be > 0"),
        ({"learning_rate": float("nan")}, "learning rate must be > 0"),
        ({"learning_rate": 0.5}, "far too high"),
        ({"batch_size": 0}, "batch size"),
        ({"grad_accum": 0}, "gradient accumulation"),
        ({"max_steps": 0}, "max steps"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"warmup_ratio": 1.0}, r"warmup ratio must be in \[0, 1\)"),
        ({"warmup_ratio": -0.1}, "warmup ratio"),
        ({"max_length": 8}, "max length must be >= 16"),
        ({"eval_fraction": 0.9}, "eval fraction"),
        ({"eval_every": 0}, "eval_every"),
        ({"eval_every": 4, "save_every": 6}, "multiple of eval_every"),
        ({"keep_checkpoints": 0}, "keep_checkpoints"),
        ({"lora": True, "lora_r": 0}, "LoRA needs"),
        ({"precision": "int8"}, "precision"),
        ({"long_texts": "wrap"}, "long_texts"),
        ({"weight_decay": -1.0}, "weight decay"),
    ],
)
def test_impossible_hyperparameters(changes, message):
    with pytest.raises(TrainingInputError, match=message):
        validate_hyperparameters(FinetuneConfig(**changes))


def test_defaults_are_valid_and_lr_depends_on_lora():
    validate_hyperparameters(FinetuneConfig())
    assert FinetuneConfig().effective_lr() == 5e-5
    assert FinetuneConfig(lora=True).effective_lr() == 2e-4
    assert FinetuneConfig(learning_rate=1e-5, lora=True).effective_lr() == 1e-5
    # Without evaluation there is no best checkpoint, so saves need not align with evals.
    validate_hyperparameters(FinetuneConfig(eval_fraction=0, eval_every=4, save_every=6))


def test_non_empty_out_dir_needs_overwrite(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(TrainingInputError, match="not empty"):
        validate_hyperparameters(FinetuneConfig(out_dir=str(tmp_path)))
    validate_hyperparameters(FinetuneConfig(out_dir=str(tmp_path), overwrite=True))


def test_unknown_option():
    with pytest.raises(TrainingInputError, match="unknown finetune option"):
        FinetuneConfig.from_dict({"lr": 1e-5})


def test_split_is_seeded_and_disjoint():
    texts = [f"t{i}" for i in range(20)]
    train, held = tdata.split_texts(texts, FinetuneConfig(eval_fraction=0.2, seed=1))
    assert len(held) == 4 and len(train) == 16 and set(train) | set(held) == set(texts)
    assert (train, held) == tdata.split_texts(texts, FinetuneConfig(eval_fraction=0.2, seed=1))
    assert tdata.split_texts(texts, FinetuneConfig(eval_fraction=0.2, max_eval_examples=2))[1].__len__() == 2
    assert tdata.split_texts(texts, FinetuneConfig(eval_fraction=0))[1] == []


def test_a_repeated_text_is_never_both_trained_on_and_held_out():
    # a mix with call_repeats > 1 holds each call text twice: a copy on each side would leak into the
    # held-out loss that picks the best checkpoint
    texts = [f"t{i}" for i in range(20)]
    repeated = texts + texts[:10]
    for seed in range(5):
        train, held = tdata.split_texts(repeated, FinetuneConfig(eval_fraction=0.2, seed=seed))
        assert len(held) == len(set(held)) == 4 and not set(train) & set(held)
        assert set(train) | set(held) == set(texts)
        assert len(train) + sum(repeated.count(h) for h in held) == len(repeated)  # every copy of a held text out
    # without repeats the split is the one it always was
    train, held = tdata.split_texts(texts, FinetuneConfig(eval_fraction=0.2, seed=1))
    import random

    order = list(range(20))
    random.Random(1).shuffle(order)
    assert held == [texts[i] for i in sorted(order[:4])] and train == [texts[i] for i in order[4:]]


def test_eval_split_too_big():
    with pytest.raises(TrainingInputError, match="eval split too big"):
        tdata.split_texts(["only one"], FinetuneConfig(eval_fraction=0.1))


# ---------------------------------------------------------------- result spans and masking


def test_result_spans():
    assert [CALC[s:e] for s, e in tdata.result_spans(CALC)] == ["0.29"]
    text = "A [QA(Where is Paris?) -> France] b [Calendar()] c [Calculator(1 + 1) -> ] d [Calculator(2*3) ->  6 ]"
    assert [text[s:e] for s, e in tdata.result_spans(text)] == ["France", "6"]


def masked_text(tokenizer, text: str, example: dict) -> list[str]:
    return [tokenizer.decode([t]) for t, lab in zip(example["input_ids"], example["labels"], strict=True)
            if lab == tdata.IGNORE_INDEX]


def test_masking_is_exactly_the_result_tokens(tokenizer):
    cfg = FinetuneConfig(max_length=256)
    [ex] = tdata.build_examples(CALC, tokenizer, cfg)
    assert ex["input_ids"] == tokenizer(CALC)["input_ids"]
    assert "".join(masked_text(tokenizer, CALC, ex)).strip() == "0.29"
    # Exactly the tokens whose characters overlap the result; "->" and "]" keep their labels.
    offsets = tokenizer(CALC, return_offsets_mapping=True)["offset_mapping"]
    (s, e), = tdata.result_spans(CALC)
    expected = [a < e and b > s for a, b in offsets]
    assert [lab == tdata.IGNORE_INDEX for lab in ex["labels"]] == expected
    kept = [tokenizer.decode([t]) for t, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100]
    text_kept = "".join(kept)
    assert " [Calculator(400 / 1400) ->" in text_kept and "] 29% passed" in text_kept


def test_masking_several_tools_and_empty_results(tokenizer):
    text = ("Paris is the capital of [QA(What is the capital of France?) -> Paris] France. "
            "Today is [Calendar() -> Today is Monday, January 30, 2023] Monday. "
            "An empty one [Calculator(1 + 1) -> ] here, and no result [Calculator(2 + 2)] there.")
    [ex] = tdata.build_examples(text, tokenizer, FinetuneConfig(max_length=512))
    masked = "".join(masked_text(tokenizer, text, ex))
    assert masked.split() == "Paris Today is Monday, January 30, 2023".split()
    # With masking off, every token is trained.
    [plain] = tdata.build_examples(text, tokenizer, FinetuneConfig(max_length=512, mask_results=False))
    assert plain["labels"] == plain["input_ids"]


def test_long_texts_are_split_between_calls(tokenizer):
    parts = [f"Step {i}: {i} plus {i} is {2 * i} [Calculator({i} + {i}) -> {2 * i}] indeed." for i in range(1, 9)]
    text = " ".join(parts)
    cfg = FinetuneConfig(max_length=32)
    windows = tdata.build_examples(text, tokenizer, cfg)
    full = tokenizer(text, return_offsets_mapping=True)
    assert len(windows) > 2 and all(len(w["input_ids"]) <= 32 for w in windows)
    assert [t for w in windows for t in w["input_ids"]] == full["input_ids"]  # nothing lost, nothing repeated
    # No window boundary falls strictly inside a call.
    calls = tdata.call_spans(text)
    pos = 0
    for w in windows[:-1]:
        pos += len(w["input_ids"])
        boundary = full["offset_mapping"][pos][0]
        assert not any(s < boundary < e for s, e in calls)
    [first] = tdata.build_examples(text, tokenizer, cfg.replace(long_texts="truncate"))
    assert first == windows[0]


def test_collator_pads_by_length_not_by_id(tokenizer):
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos  # the SmolLM2 trap this guards against
    batch = [{"input_ids": [5, 6, eos], "labels": [5, -100, eos]}, {"input_ids": [7], "labels": [7]}]
    out = tdata.PadCollator(tokenizer.pad_token_id)(batch)
    assert out["input_ids"].tolist() == [[5, 6, eos], [7, eos, eos]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["labels"].tolist() == [[5, -100, eos], [7, -100, -100]]  # the real eos keeps its label


def test_dataset_stats(tokenizer):
    examples = tdata.build_dataset([CALC, CALC], tokenizer, FinetuneConfig())
    stats = tdata.dataset_stats(examples)
    n = len(examples[0]["input_ids"])
    masked = examples[0]["labels"].count(-100)
    assert stats == {"sequences": 2, "tokens": 2 * n, "trained_tokens": 2 * (n - 1 - masked)}


_WORDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789 .,:%()'é-", min_size=1, max_size=30)


@given(result=_WORDS, before=_WORDS, after=_WORDS)
@settings(max_examples=60, deadline=None)
def test_masked_tokens_cover_exactly_the_result(tokenizer, result, before, after):
    from toolformer_app.calls import linearize

    text = before + linearize("WikiSearch", "some query", result) + " " + after
    spans = tdata.result_spans(text)
    [ex] = tdata.build_examples(text, tokenizer, FinetuneConfig(max_length=512))
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    if not result.strip() or "->" in result:  # sanitised or empty: e(c, eps) has nothing to mask
        assert len(spans) <= 1
    for (a, b), label in zip(offsets, ex["labels"], strict=True):
        inside = any(a < e and b > s for s, e in spans)
        assert (label == tdata.IGNORE_INDEX) == inside
    # Every character of the result is under some masked token.
    for s, e in spans:
        covered = set()
        for (a, b), label in zip(offsets, ex["labels"], strict=True):
            if label == tdata.IGNORE_INDEX:
                covered.update(range(a, b))
        assert set(range(s, e)) <= covered
