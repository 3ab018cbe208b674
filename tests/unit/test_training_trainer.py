"""The trainer on a tiny random llama (fast): outputs, card, events, stop/resume, LoRA, memory check, optimizer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from tests.unit.helpers import save_tiny_llama
from toolformer_app import models
from toolformer_app.training import trainer as tr
from toolformer_app.training.events import EventWriter, read_event_file
from toolformer_app.training.loading import master_adamw_class
from toolformer_app.training.options import FinetuneConfig, TrainingInputError

TEXTS = [
    "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test.",
    "The farm had 12 cows and bought 30 more, so it now has 42 [Calculator(12 + 30) -> 42] cows.",
    "A ticket costs 15 dollars, so 7 tickets cost 105 [Calculator(15 * 7) -> 105] dollars.",
    "The tank held 250 litres and lost 75, leaving 175 [Calculator(250 - 75) -> 175] litres.",
    "Each box has 24 pencils; 9 boxes hold 216 [Calculator(24 * 9) -> 216] pencils.",
    "The class of 36 split into 4 groups of 9 [Calculator(36 / 4) -> 9] students.",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    """A tiny random llama saved with the default model's tokenizer: a model dir like any other."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture()
def data_file(tmp_path) -> str:
    path = tmp_path / "cstar.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return str(path)


def cfg_for(tiny_dir: str, data_file: str, out: Path, **kw) -> FinetuneConfig:
    base = dict(data=data_file, model=tiny_dir, out_dir=str(out), max_steps=3, batch_size=2, max_length=64,
                eval_fraction=0.34, eval_every=1, save_every=1, learning_rate=1e-3, warmup_ratio=0.0)
    return FinetuneConfig(**(base | kw))


def test_full_finetune_writes_a_loadable_model_with_card(tiny_dir, data_file, tmp_path):
    out = tmp_path / "out"
    events = EventWriter(tmp_path / "events.jsonl")
    metrics = tr.run_finetune(cfg_for(tiny_dir, data_file, out), tmp_path / "job", job_id="j1", events=events)
    assert metrics["steps"] == 3 and metrics["path"] == str(out.resolve())
    assert metrics["eval_loss"] <= metrics["eval_loss_first"]
    assert {"config.json", "model.safetensors", "tokenizer.json", models.CARD_NAME} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".out.tmp-*"))  # the tmp dir was renamed, not left behind
    card = json.loads((out / models.CARD_NAME).read_text())
    assert card["kind"] == "full" and card["base_model"] == tiny_dir and card["job_id"] == "j1"
    assert "inference" not in card and models.clause_inputs(str(out)) == ()  # not trained on clause calls
    assert card["data"]["sha256"] and card["data"]["train_examples"] == 4 and card["data"]["eval_examples"] == 2
    assert card["hyperparameters"]["max_steps"] == 3 and card["metrics"]["perplexity"] > 1
    types = [e["type"] for e in read_event_file(tmp_path / "events.jsonl")]
    assert types.count("progress") == 3 and types.count("checkpoint") == 3 and "start" in types
    assert types.count("eval") == 4  # the base model, then every step
    progress = [e for e in read_event_file(tmp_path / "events.jsonl") if e["type"] == "progress"]
    assert set(progress[0]) >= {"step", "total_steps", "loss", "lr", "tokens_per_s", "eta_s", "epoch"}
    assert not (tmp_path / "job" / tr.CHECKPOINTS_DIR).exists()  # cleaned up after success
    model, tok = models.load(str(out))
    ids = tok("The farm had", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3


def test_stop_saves_a_checkpoint_and_resume_continues(tiny_dir, data_file, tmp_path):
    cfg = cfg_for(tiny_dir, data_file, tmp_path / "out", max_steps=4, eval_every=2, save_every=2,
                  cleanup_checkpoints=False, precision="bf16")  # bf16 weights: the fp32 master copy is saved
    job_dir = tmp_path / "job"
    stop = threading.Event()
    events = EventWriter(job_dir / "events.jsonl")
    # Stop as soon as the first checkpoint is written: the next step ends with a save, then it stops.
    with pytest.raises(tr.JobCancelled) as info:
        tr.run_finetune(cfg, job_dir, events=events, stop=stop, on_checkpoint=lambda path, step: stop.set())
    assert info.value.step == 3 and info.value.checkpoint.endswith("checkpoint-3")
    assert tr.latest_checkpoint(job_dir) == info.value.checkpoint
    assert not (tmp_path / "out").exists()
    state = torch.load(Path(info.value.checkpoint) / "optimizer.pt", weights_only=True)
    assert "master_weights" in state  # bf16 weights on CPU: the fp32 copies are resumable
    metrics = tr.run_finetune(cfg, job_dir, events=events, resume_from=tr.latest_checkpoint(job_dir))
    assert metrics["steps"] == 4
    evs = read_event_file(job_dir / "events.jsonl")
    start2 = [e for e in evs if e["type"] == "start"][1]
    assert start2["step"] == 3 and start2["resumed_from"].endswith("checkpoint-3")
    assert [e["step"] for e in evs if e["type"] == "progress"] == [1, 2, 3, 4]
    assert tr.latest_checkpoint(job_dir).endswith("checkpoint-4")  # kept: cleanup_checkpoints=False
    assert (job_dir / tr.LATEST_NAME).read_text().strip() == "checkpoint-4"


def test_lora_writes_an_adapter_that_models_load_merges(tiny_dir, data_file, tmp_path):
    out = tmp_path / "adapter"
    metrics = tr.run_finetune(cfg_for(tiny_dir, data_file, out, lora=True, max_steps=2, eval_fraction=0,
                                      clause_inputs="QA"), tmp_path / "j")
    assert metrics["steps"] == 2 and "eval_loss" not in metrics
    assert models.clause_inputs(str(out)) == ("QA",)  # the card tells decoders to write QA's input
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(tiny_dir).resolve())
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / models.CARD_NAME).read_text())["kind"] == "lora"
    model, _ = models.load(str(out))
    assert type(model).__name__ == "LlamaForCausalLM"  # merged, not a PeftModel


def test_base_model_reference_keeps_presets_and_hub_ids(tmp_path):
    assert tr.base_model_reference("smollm2-135m", "/cache/smollm2-135m") == "smollm2-135m"
    assert tr.base_model_reference("org/model", "org/model") == "org/model"
    assert tr.base_model_reference(str(tmp_path), str(tmp_path)) == str(tmp_path.resolve())


def test_model_not_found_is_an_input_error(data_file, tmp_path):
    for name in ("no-such-model", str(tmp_path / "missing" / "dir")):
        with pytest.raises(TrainingInputError, match="model"):
            tr.validate_inputs(FinetuneConfig(data=data_file, model=name))


def test_existing_output_is_refused_before_compute(tiny_dir, data_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "weights.bin").write_text("x")
    with pytest.raises(TrainingInputError, match="not empty"):
        tr.run_finetune(cfg_for(tiny_dir, data_file, out), tmp_path / "job")


def test_memory_check_turns_oom_into_advice():
    class Exploding(torch.nn.Module):
        def forward(self, **kw):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    examples = [{"input_ids": [1] * 40, "labels": [1] * 40}, {"input_ids": [1] * 10, "labels": [1] * 10}]
    cfg = FinetuneConfig(batch_size=8, max_length=512)
    with pytest.raises(TrainingInputError, match=r"out of memory on one batch of 8 x 40 tokens: lower --batch-size"):
        tr.memory_check(Exploding(), examples, cfg, "cpu", {})

    class CpuOom(torch.nn.Module):
        def forward(self, **kw):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    with pytest.raises(TrainingInputError, match="or use --lora"):
        tr.memory_check(CpuOom(), examples, cfg, "cpu", {})


def test_master_weight_adamw_keeps_small_updates():
    cls = master_adamw_class()
    plain = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    mastered = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt_plain = torch.optim.AdamW([plain], lr=1e-4, weight_decay=0.0)
    opt_master = cls([mastered], lr=1e-4, weight_decay=0.0)
    for _ in range(50):
        for p, opt in ((plain, opt_plain), (mastered, opt_master)):
            p.grad = torch.ones_like(p)
            opt.step()
            opt.zero_grad()
    assert torch.all(plain == 1.0)  # every 1e-4 step rounded away in bf16
    assert torch.all(mastered < 1.0)  # 50 x 1e-4 accumulated in fp32, then rounded once
    # The fp32 copies travel in the state dict: a fresh optimizer resumes from them exactly.
    state = opt_master.state_dict()
    fresh = cls([torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))], lr=1e-4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh._pairs[0][1], opt_master._pairs[0][1])
    assert fresh._pairs[0][1][0].item() == pytest.approx(1 - 50e-4, abs=1e-6)


def test_latest_checkpoint_ignores_incomplete(tmp_path):
    ck = tmp_path / tr.CHECKPOINTS_DIR
    assert tr.latest_checkpoint(tmp_path) is None
    for n in (2, 4, 6):
        (ck / f"checkpoint-{n}").mkdir(parents=True)
    (ck / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (ck / "checkpoint-4" / "trainer_state.json").write_text("{}")
    # checkpoint-6 is half written (no trainer_state.json): never chosen.
    assert tr.latest_checkpoint(tmp_path) == str(ck / "checkpoint-4")
    (tmp_path / tr.LATEST_NAME).write_text("checkpoint-2\n")
    assert tr.latest_checkpoint(tmp_path) == str(ck / "checkpoint-2")
    (tmp_path / tr.LATEST_NAME).write_text("checkpoint-6\n")
    assert tr.latest_checkpoint(tmp_path) == str(ck / "checkpoint-4")
    assert tr.checkpoint_step(str(ck / "checkpoint-4")) == 4
