"""Packing: texts that share a row give each text exactly the loss it gets alone (float32, a tiny llama)."""

from __future__ import annotations

import pytest
import torch

from tests.unit.helpers import default_tokenizer
from toolformer_app.training import data as tdata
from toolformer_app.training import trainer as tr
from toolformer_app.training.options import FinetuneConfig

TEXTS = [
    "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test.",
    "The farm had 12 cows and bought 30 more, so it now has 42 [Calculator(12 + 30) -> 42] cows.",
    "Paris is the capital of France.",
    "Today is [Calendar() -> Today is Monday, January 30, 2017.] the first day of the spring term at the school.",
    "A ticket costs 15 dollars, so 7 tickets cost 105 [Calculator(15 * 7) -> 105] dollars.",
    "The Nile flows north into the Mediterranean Sea, through Egypt and Sudan.",
]


@pytest.fixture(scope="module")
def tok():
    return default_tokenizer()


@pytest.fixture(scope="module")
def tiny(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      attn_implementation="sdpa", dtype=torch.float32, use_cache=False)  # as the trainer loads it
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def examples(tok):
    return tdata.build_dataset(TEXTS, tok, FinetuneConfig(max_length=64))


def test_rows_are_balanced_and_never_longer_than_max_length():
    rows = tdata.pack_rows([50, 40, 30, 20, 10, 5], 64)
    widths = sorted(sum([50, 40, 30, 20, 10, 5][i] for i in r) for r in rows)
    assert len(rows) == 3 and max(widths) <= 64 and sorted(i for r in rows for i in r) == list(range(6))
    assert widths == [50, 50, 55]
    assert tdata.pack_rows([64, 64], 64) == [[0], [1]]


def test_packed_batch_restarts_positions_and_never_predicts_a_text_from_the_one_before(examples, tok):
    inputs, placed = tdata.pack_batch(examples, tok.pad_token_id, 64)
    for (r, c, n), e in zip(placed, examples, strict=True):
        assert inputs["input_ids"][r, c : c + n].tolist() == e["input_ids"]
        assert inputs["position_ids"][r, c : c + n].tolist() == list(range(n))
        assert inputs["labels"][r, c].item() == tdata.IGNORE_INDEX  # the text's first token
        assert inputs["labels"][r, c + 1 : c + n].tolist() == e["labels"][1:]  # result masking kept
    assert inputs["input_ids"].shape[1] <= 64 and "attention_mask" not in inputs


def test_packed_losses_equal_each_text_alone_in_float32(tiny, examples, tok):
    alone = [tdata.text_losses(tiny, [e], tok.pad_token_id)[0] for e in examples]
    padded = tdata.text_losses(tiny, examples, tok.pad_token_id)
    packed = tdata.text_losses(tiny, examples, tok.pad_token_id, max_length=64)
    one_row = tdata.text_losses(tiny, examples, tok.pad_token_id, max_length=sum(len(e["input_ids"]) for e in examples))
    assert alone == pytest.approx(padded, rel=1e-5, abs=1e-5)
    assert alone == pytest.approx(packed, rel=1e-5, abs=1e-5)
    assert alone == pytest.approx(one_row, rel=1e-5, abs=1e-5)


def test_the_training_loss_of_a_packed_batch_is_the_padded_one(tiny, examples, tok):
    # What the Trainer optimises: the model's own mean over the batch's trained tokens.
    with torch.no_grad():
        padded = tiny(**tdata.PadCollator(tok.pad_token_id)(examples)).loss
        packed = tiny(**tdata.PackCollator(tok.pad_token_id, 64)(examples)).loss
    assert float(packed) == pytest.approx(float(padded), rel=1e-5)


def test_packing_would_be_wrong_without_the_block_diagonal_mask(tiny, examples, tok):
    inputs, placed = tdata.pack_batch(examples, tok.pad_token_id, 256)
    with torch.no_grad():  # one running position: every text attends to the ones before it in the row
        plain = tdata.token_losses(tiny, inputs | {"position_ids": torch.arange(inputs["input_ids"].shape[1])[None]})
    alone = [tdata.text_losses(tiny, [e], tok.pad_token_id)[0] for e in examples]
    crossed = [float(plain[r, c : c + n].sum()) for r, c, n in placed]
    assert crossed[0] == pytest.approx(alone[0], rel=1e-5)
    assert crossed[1:] != pytest.approx(alone[1:], rel=1e-3)


def test_packing_is_checked_on_the_model_and_holds_through_lora(tiny, examples, tok):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(tiny, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    try:
        with torch.no_grad():  # adapters that change the output, so the check sees them
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.05)
        exact, worst = tr.packing_is_exact(lora, examples, tok.pad_token_id)
        assert exact and worst < 1e-5
    finally:
        lora.unload()


def test_a_packed_run_trains_and_evaluates_like_a_padded_one(tok, tmp_path):
    """The trainer path: same first eval_loss (the base model), same step loss, same eval_loss after the step."""
    import json

    from transformers import LlamaConfig, LlamaForCausalLM

    from toolformer_app.training.events import EventWriter, read_event_file

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp_path / "cstar.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS * 2))
    metrics, packed_flags = {}, {}
    for packing in (False, True):
        cfg = FinetuneConfig(data=str(data), model=str(model_dir), out_dir=str(tmp_path / f"out-{packing}"),
                             max_steps=2, batch_size=4, max_length=64, eval_fraction=0.34, eval_every=1, save_every=1,
                             learning_rate=1e-3, warmup_ratio=0.0, precision="fp32", packing=packing)
        events = tmp_path / f"events-{packing}.jsonl"
        metrics[packing] = tr.run_finetune(cfg, tmp_path / f"job-{packing}", events=EventWriter(events))
        packed_flags[packing] = next(e["packing"] for e in read_event_file(events) if e["type"] == "start")
    assert packed_flags == {False: False, True: True}
    padded, packed = metrics[False], metrics[True]
    assert packed["eval_loss_first"] == pytest.approx(padded["eval_loss_first"], rel=1e-5)
    assert packed["train_loss_mean"] == pytest.approx(padded["train_loss_mean"], rel=1e-4)
    assert packed["eval_loss"] == pytest.approx(padded["eval_loss"], rel=1e-4)
    assert packed["tokens_seen"] == padded["tokens_seen"]  # real tokens only, padding not counted
