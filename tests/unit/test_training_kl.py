"""The KL term to the base on call-free tokens (FinetuneConfig.kl_weight): the mask, its collation, the maths,
and a LoRA run that uses it (a tiny random llama, float32)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.unit.helpers import default_tokenizer, save_tiny_llama
from toolformer_app.training import data as tdata
from toolformer_app.training import trainer as tr
from toolformer_app.training.options import FinetuneConfig, TrainingInputError, validate_hyperparameters

CALL = "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test."
PLAIN = "The Nile flows north into the Mediterranean Sea, through Egypt and Sudan."


@pytest.fixture(scope="module")
def tok():
    return default_tokenizer()


def _free_text(tok, example: dict) -> str:
    return tok.decode([t for t, f in zip(example["input_ids"], example[tdata.KL_MASK], strict=True) if f])


def test_the_mask_covers_the_text_before_the_first_call_and_nothing_after(tok):
    cfg = FinetuneConfig(max_length=64, kl_weight=1.0)
    (call,) = tdata.build_examples(CALL, tok, cfg)
    (plain,) = tdata.build_examples(PLAIN, tok, cfg)
    assert _free_text(tok, call) == "Out of 1400 participants, 400"  # " [" and everything after is the LM's alone
    assert all(plain[tdata.KL_MASK][i] for i in range(len(plain["input_ids"])) if plain["labels"][i] != tdata.IGNORE_INDEX)
    assert _free_text(tok, plain).strip() == PLAIN
    # Off by default: the examples (and so the batches) are exactly what they were without the option.
    assert tdata.KL_MASK not in tdata.build_examples(CALL, tok, FinetuneConfig(max_length=64))[0]


def test_packed_and_padded_batches_put_the_mask_on_the_same_tokens(tok):
    examples = tdata.build_dataset([CALL, PLAIN, CALL.replace("400", "700")], tok, FinetuneConfig(max_length=64, kl_weight=1.0))
    padded = tdata.PadCollator(tok.pad_token_id)(examples)
    packed, placed = tdata.pack_batch(examples, tok.pad_token_id, 128)
    for i, (r, c, n) in enumerate(placed):
        assert packed[tdata.KL_MASK][r, c].item() is False  # a text's first token is never predicted
        assert packed[tdata.KL_MASK][r, c + 1 : c + n].tolist() == padded[tdata.KL_MASK][i, 1:n].tolist()


def test_kl_to_base_is_the_mean_kl_over_the_masked_tokens():
    torch.manual_seed(0)
    logits, base = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    free = torch.zeros(2, 5, dtype=torch.bool)
    free[0, 2] = free[1, 4] = True  # tokens at columns 2 and 4: predicted from columns 1 and 3
    expected = []
    for r, t in ((0, 1), (1, 3)):
        q, log_p = torch.softmax(base[r, t], -1), torch.log_softmax(logits[r, t], -1)
        expected.append(float((q * (q.log() - log_p)).sum()))
    assert float(tdata.kl_to_base(logits, base, free)) == pytest.approx(sum(expected) / 2, rel=1e-5)
    assert float(tdata.kl_to_base(base, base, free)) == pytest.approx(0.0, abs=1e-6)
    assert float(tdata.kl_to_base(logits, base, torch.zeros_like(free))) == 0.0


def test_the_option_needs_lora_and_a_weight_of_at_least_zero():
    with pytest.raises(TrainingInputError, match="needs --lora"):
        validate_hyperparameters(FinetuneConfig(kl_weight=0.5))
    with pytest.raises(TrainingInputError, match="kl weight"):
        validate_hyperparameters(FinetuneConfig(kl_weight=-1.0, lora=True))
    validate_hyperparameters(FinetuneConfig(kl_weight=0.5, lora=True))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def test_a_lora_run_with_the_kl_term_trains_and_its_loss_starts_at_the_lm_loss(tiny_dir, tok, tmp_path):
    data = tmp_path / "cstar.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in [CALL, PLAIN] * 4))
    base = dict(data=str(data), model=tiny_dir, max_steps=3, batch_size=4, max_length=64, eval_fraction=0.25,
                eval_every=3, save_every=3, learning_rate=1e-2, warmup_ratio=0.0, lora=True, seed=0)
    runs = {}
    for w in (0.0, 5.0):
        events = tmp_path / f"events{w}.jsonl"
        from toolformer_app.training.events import EventWriter

        tr.run_finetune(FinetuneConfig(**base, kl_weight=w, out_dir=str(tmp_path / f"out{w}")), tmp_path / f"job{w}",
                        events=EventWriter(events))
        rows = [json.loads(line) for line in events.read_text().splitlines()]
        runs[w] = ([r["loss"] for r in rows if r.get("type") == "progress"],
                   [r["eval_loss"] for r in rows if r.get("type") == "eval"])
    # LoRA's B starts at zero, so at step 1 the model is the base and the KL term adds exactly 0.
    assert runs[5.0][0][0] == pytest.approx(runs[0.0][0][0], rel=1e-4)
    # Later steps differ (the term pulls the adapters back), and eval_loss stays the LM loss (same at step 0).
    assert runs[5.0][0][1:] != pytest.approx(runs[0.0][0][1:], rel=1e-4)
    assert runs[5.0][1][0] == pytest.approx(runs[0.0][1][0], rel=1e-5)
    assert (tmp_path / "out5.0" / "adapter_config.json").exists()
