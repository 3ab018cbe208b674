"""`recipe`: rebuild the shipped tool-using model from nothing, resumably.

    corpus -> generate per tool -> merge and mix -> LoRA finetune -> eval -> model card (-> ship)

Every stage is a real subprocess of this CLI (`generate`, `finetune`, `eval`) writing into ``--out``,
so the recipe is exactly the commands the README shows. Each stage is skipped when its output is
complete, and the interrupted stage resumes (generate keeps its work log; finetune resumes its job
from the last checkpoint), so Ctrl-C and rerunning the same command continues where it stopped.

``--scale S`` makes a small run in the recipe's proportions, for sweeps: S x the texts, the finetune's steps scaled with them
(the same epochs over a smaller mix), S x the eval items and calibration examples (at least 20 each). Its
results differ from the full run's by fewer training texts (fewer calls to learn from) and fewer eval items
(wider intervals); at --scale 0.25 it learned no call where the full run did (``SCALE_NOTE``, ``recipe --help``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolformer_app.models import model_card

SHIPPED_NAME = "smollm2-135m-toolformer"
CARD_MARK = model_card.CARD_MARK  # tells our README.md from the one peft writes
GENERATION_KEYS = ("model", "scale", "seed")  # a rerun must match these; later stages can be redone by deleting them
EVAL_SUITES = "math,facts,facts_plain,dates,perplexity,plain"
CALIBRATED_SUITES = "math,facts,facts_plain,plain"  # Chat's calibrated default: calls on math and facts, few on plain sentences
# The finetune's own defaults (training/options.py FinetuneConfig; a test pins them), which the full run uses
# for its held-out evaluations and checkpoints, and calibrate's examples per side (evaluation/calibrate.py).
FINETUNE_EVAL_EVERY = 50
FINETUNE_SAVE_EVERY = 50
CALIBRATE_N = 100
# Floors of a scaled run: a schedule with a warmup step and a decay; an accuracy over 20 items still moves in
# 5-point steps (a 95% interval of about +-20 points at 50%); 20 negatives put FPR <= 10% at 2 false calls.
MIN_STEPS = 4
MIN_EVAL_ITEMS = 20
MIN_CALIBRATE_N = 20
SCALE_NOTE = (
    "--scale S reads S x each source's texts (at least 1) and scales every later stage with it, so a small run "
    "is the full recipe in miniature: the finetune's steps (and its held-out evaluation and checkpoint "
    "intervals) shrink with the texts read, so it makes the same number of passes over its smaller mix; the "
    "eval reads S x --eval-limit items per suite (at least 20) and calibrate S x 100 examples per side (at least "
    "20), never more than the full run. Relative to the full run a small run has fewer distinct training texts "
    "(fewer calls per tool, so expect a weaker model), the same epochs and learning-rate schedule, and fewer "
    "eval items, so wider intervals (about +-20 points at 20 items, +-10 at 100). Measured once (commit 67390e8): "
    "at --scale 0.25 the small run learned no call at all (21 call texts; 40 steps, or 160 with its best "
    "checkpoint at step 36), while its facts tracked the full run's within the noise: a small run ranks levers "
    "on forgetting, not on calling. recipe.json, the stage table and the model card give the effective (scaled) "
    "values."
)


@dataclass(frozen=True)
class Source:
    """One `generate` run: a corpus, the tools annotated on it, and how many texts it reads."""

    name: str
    args: tuple[str, ...]
    limit: int
    plain_ratio: float | None = None  # its own call-free ratio, mixed apart and added (None: the recipe's mix)

    @property
    def clause_inputs(self) -> tuple[str, ...]:
        """The tools this run makes clause calls for (``--clause-calls``): the decoder writes their inputs."""
        args = list(self.args)
        return tuple(args[args.index("--clause-calls") + 1].split(",")) if "--clause-calls" in args else ()


# The shipped recipe. Calendar on dated documents (the paper's creation dates), Calculator on the
# arithmetic corpus and wiki texts that pass A.1, WikiSearch and QA on encyclopedic text, MT on
# English paragraphs quoting French or Spanish. k=3 positions for the tools whose execution runs a
# model (QA, MT) keeps generation within the CPU budget.
SOURCES: tuple[Source, ...] = (
    Source("calendar", ("--dated", "--tools", "Calendar"), 300),
    Source("calculator", ("--arithmetic", "--tools", "Calculator"), 160),
    Source("mt", ("--foreign", "--tools", "MT", "--k", "3"), 40),  # 25% precision at 135M: few texts
    # 32 texts: QA's LM reader prefills a prompt for every sampled question (~7 a text), which once dominated
    # the stage on 2 CPU cores (25 min with three 500-character passages in float32; 142 s with one, bf16)
    Source("wiki", ("--wiki", "--tools", "WikiSearch,QA,Calculator", "--k", "3"), 32),
    # QA clause calls on statements and questions about countries no evaluation item names: the model learns *when*
    # to ask, and the decoder writes the clause so far as QA's input (experiments/qa/clause_inputs_countries.sh).
    # Mixed apart at 2 call-free texts per call text, so the other tools' mix stays as it was.
    Source("countries", ("--countries", "--tools", "QA", "--clause-calls", "QA", "--k", "3", "--m", "2"), 128,
           plain_ratio=2.0),
)


@dataclass
class RecipeConfig:
    model: str = "smollm2-135m"
    out: str = "runs/recipe"
    scale: float = 1.0  # multiplies every source's limit and scales every later stage (SCALE_NOTE; smoke: 0.05)
    # More call-free text and fewer steps than ratio 2, 240 steps, 2e-4 (~3.9 epochs), which forgot facts on
    # prompts without the LAMA prefix. The rate is LoRA's: at 120 steps and 1.5e-4 the
    # honest mix (89 call texts of 356) taught no call at all (after " [" the model wrote operands without a
    # tool name); 160 steps at 4e-4 (~4 epochs) did (docs/experiments.md). The call-free ratio
    # was chosen on the eval's dev split (items 100-199): 6 beat 3 and 1.5 on math + facts as written (sweep).
    plain_ratio: float = 6.0
    max_calls_per_text: int = 1
    max_steps: int = 236  # 160 steps over the other tools' 651-row mix, scaled to the 961 rows with QA's
    batch_size: int = 8
    learning_rate: float = 4e-4
    lora_r: int = 16
    kl_weight: float = 0.0  # KL to the base on call-free tokens (FinetuneConfig.kl_weight); 0: the paper's LM loss
    eval_limit: int = 100
    eval_suites: str = EVAL_SUITES
    ship: str | None = None  # copy the adapter, card and C* here (e.g. assets/models/smollm2-135m-toolformer)
    until: str | None = None  # stop after this stage group ("generate", "mix", "finetune", "eval")
    seed: int = 0

    def limits(self) -> dict[str, int]:
        return {s.name: max(1, round(s.limit * self.scale)) for s in SOURCES}

    def texts_fraction(self) -> float:
        """The share of the full run's texts this run reads: ``scale`` after each source's rounding (exactly 1.0
        at scale 1)."""
        return sum(self.limits().values()) / sum(s.limit for s in SOURCES)

    def scaled_steps(self, full: int) -> int:
        """Finetune steps that keep the full run's epochs. The mix grows with the texts read (its call texts
        come from them, its call-free texts are a fixed ratio of those), so epochs = steps x batch / mix rows
        stay put when the steps scale like the texts read. Deriving them from the mix itself would need the
        full run's mix size, which a scaled run never has; the card records the epochs of each run.
        Below ``MIN_STEPS`` (tiny scales) the epochs grow."""
        return max(min(full, MIN_STEPS), round(full * self.texts_fraction()))

    def finetune_steps(self) -> int:
        return self.scaled_steps(self.max_steps)

    def interval(self, full: int) -> int:
        """A finetune interval (evaluation, checkpoint) at the same fraction of the (scaled) steps as in the full
        run, so a small run still evaluates and keeps its best checkpoint along the way (warmup is a ratio of
        the steps already)."""
        return max(1, round(full * self.finetune_steps() / self.max_steps))

    def eval_every(self) -> int:
        return self.interval(FINETUNE_EVAL_EVERY)

    def save_every(self) -> int:
        # HF Trainer keeps the best checkpoint only when saves fall on evaluations: a multiple of eval_every
        return self.eval_every() * max(1, round(FINETUNE_SAVE_EVERY / FINETUNE_EVAL_EVERY))

    def scaled_eval_limit(self, full: int) -> int:
        """Eval items per suite: scaled, floored so that an accuracy still means something, never above the
        full run's (more items would reach into the dev split)."""
        return min(full, max(MIN_EVAL_ITEMS, round(full * self.scale)))

    def effective_eval_limit(self) -> int:
        return self.scaled_eval_limit(self.eval_limit)

    def calibrate_n(self) -> int:
        return min(CALIBRATE_N, max(MIN_CALIBRATE_N, round(CALIBRATE_N * self.scale)))

    def effective(self) -> dict[str, Any]:
        """What this run actually uses at its scale (recipe.json, the stage table, the card)."""
        return {"scaled": self.scale != 1.0, "texts_fraction": round(self.texts_fraction(), 4),
                "limits": self.limits(), "max_steps": self.finetune_steps(), "eval_every": self.eval_every(),
                "save_every": self.save_every(), "eval_limit": self.effective_eval_limit(),
                "calibrate_n": self.calibrate_n()}

    def scale_line(self) -> str:
        e = self.effective()
        return (f"scaled run (--scale {self.scale:g}): {sum(e['limits'].values())} texts of "
                f"{sum(s.limit for s in SOURCES)}, finetune {e['max_steps']} steps of {self.max_steps} (eval and "
                f"checkpoint every {e['eval_every']}), eval {e['eval_limit']} items per suite of {self.eval_limit}, "
                f"calibrate {e['calibrate_n']} per side of {CALIBRATE_N}")


def _python() -> list[str]:
    return [sys.executable, "-m", "toolformer_app"]


def generate_command(cfg: RecipeConfig, source: Source) -> list[str]:
    out = Path(cfg.out) / "gen" / source.name
    return [*_python(), "generate", *source.args, "--limit", str(cfg.limits()[source.name]), "--model", cfg.model,
            "--seed", str(cfg.seed), "--out", str(out)]


def finetune_command(cfg: RecipeConfig, job_id: str, resume: bool) -> list[str]:
    out = Path(cfg.out)
    cmd = [*_python(), "finetune", "--data", str(out / "mix.jsonl"), "--model", cfg.model, "--lora",
           "--lora-r", str(cfg.lora_r), "--max-steps", str(cfg.finetune_steps()), "--batch-size",
           str(cfg.batch_size), "--lr", str(cfg.learning_rate), "--seed", str(cfg.seed), "--out",
           str(out / "adapter"), "--job-id", job_id]
    clause = sorted({t for s in SOURCES for t in s.clause_inputs})
    if clause:
        cmd += ["--clause-inputs", ",".join(clause)]
    if cfg.kl_weight > 0:  # only when set: at 0 the command stays the one the shipped run used
        cmd += ["--kl-weight", str(cfg.kl_weight)]
    # the intervals only when scaled: at the defaults the command stays the one a full run always had
    if (cfg.eval_every(), cfg.save_every()) != (FINETUNE_EVAL_EVERY, FINETUNE_SAVE_EVERY):
        cmd += ["--eval-every", str(cfg.eval_every()), "--save-every", str(cfg.save_every())]
    return cmd + (["--resume"] if resume else [])


def eval_command(cfg: RecipeConfig) -> list[str]:
    out = Path(cfg.out)
    return [*_python(), "eval", "--model", str(out / "adapter"), "--suites", cfg.eval_suites,
            "--limit", str(cfg.effective_eval_limit()), "--quiet", "--out", str(out / "eval")]


def calibrate_command(cfg: RecipeConfig) -> list[str]:
    out = Path(cfg.out)
    cmd = [*_python(), "calibrate", "--model", str(out / "adapter"), "--mix", str(out / "mix.jsonl"),
           "--skip", str(cfg.limits()["calculator"]), "--per-tool", "--qa-skip", str(cfg.limits()["countries"]),
           "--write-card"]
    return cmd + (["--n", str(cfg.calibrate_n())] if cfg.calibrate_n() != CALIBRATE_N else [])


def calibrated_eval_command(cfg: RecipeConfig, threshold: float) -> list[str]:
    out = Path(cfg.out)
    return [*_python(), "eval", "--model", str(out / "adapter"), "--suites", CALIBRATED_SUITES, "--modes", "tools",
            "--call-threshold", str(threshold), "--limit", str(cfg.effective_eval_limit()), "--quiet",
            "--out", str(out / "eval_calibrated")]


def _calling(out: Path) -> dict:
    card = out / "adapter" / "toolformer_card.json"
    try:
        return json.loads(card.read_text()).get("calling") or {}
    except (OSError, ValueError):
        return {}


def _generate_done(out: Path, limit: int) -> bool:
    stats = out / "stats.json"
    if not stats.exists():
        return False
    try:
        return json.loads(stats.read_text()).get("texts_seen", 0) >= limit
    except ValueError:
        return False


def _run(cmd: list[str], log: Path) -> None:
    print("  $ " + shlex.join(cmd[2:] if cmd[:1] == [sys.executable] else cmd), flush=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{cmd[3]} failed (exit {proc.returncode}): {tail[0] if tail else ''} (see {log})")


def plan(cfg: RecipeConfig) -> list[tuple[str, bool]]:
    """(stage, done) for every stage, from what ``cfg.out`` holds: what a rerun would skip."""
    out = Path(cfg.out)
    stages = [(f"generate {s.name}", _generate_done(out / "gen" / s.name, cfg.limits()[s.name])) for s in SOURCES]
    stages.append(("mix", (out / "mix.jsonl").exists()))
    stages.append(("finetune", (out / "adapter" / "adapter_config.json").exists()))
    stages.append(("calibrate", "call_threshold" in _calling(out)))
    stages.append(("eval", (out / "eval" / "results.json").exists()))
    stages.append(("eval calibrated", (out / "eval_calibrated" / "results.json").exists()
                    or ("call_threshold" in _calling(out) and _calling(out)["call_threshold"] is None)))
    card = out / "adapter" / "README.md"  # peft writes a README.md of its own: look for ours
    stages.append(("card", card.exists() and CARD_MARK in card.read_text(encoding="utf-8", errors="replace")))
    return stages


def run_recipe(cfg: RecipeConfig) -> Path:
    """Run (or resume) every stage; returns the adapter directory."""
    from toolformer_app.files import atomic_write_json
    from toolformer_app.pipeline.filtering import throughput_line

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "recipe.json"
    settings: dict[str, Any] = {k: v for k, v in cfg.__dict__.items() if k not in ("out", "ship", "until")}
    settings["effective"] = cfg.effective()  # the values the stages run with (the ones above are the full run's)
    if saved.exists():
        before = json.loads(saved.read_text())
        changed = [k for k in GENERATION_KEYS if before.get(k) != settings[k]]
        if changed:
            raise ValueError(f"{out} holds a recipe run with another {changed[0]}; use a new --out")
    atomic_write_json(saved, settings)
    if cfg.scale != 1.0:
        print(cfg.scale_line(), flush=True)
    log = out / "recipe.log"
    timing: dict[str, float] = json.loads((out / "timing.json").read_text()) if (out / "timing.json").exists() else {}
    done = dict(plan(cfg))
    total = len(done)

    def stage(n: int, name: str, fn) -> None:
        if done[name]:
            print(f"[{n}/{total}] {name}: done, skipped", flush=True)
            return
        print(f"[{n}/{total}] {name} ...", flush=True)
        t0 = time.perf_counter()
        fn()
        timing[name] = round(timing.get(name, 0.0) + time.perf_counter() - t0, 1)
        atomic_write_json(out / "timing.json", timing)
        print(f"[{n}/{total}] {name}: {timing[name]:.0f} s", flush=True)

    for n, source in enumerate(SOURCES, 1):
        stage(n, f"generate {source.name}", lambda s=source: _run(generate_command(cfg, s), log))
    n = len(SOURCES)
    gen_dirs = [out / "gen" / s.name for s in SOURCES]
    for d in gen_dirs:  # texts per minute per tool and seconds per stage, from each run's stats.json
        print(f"  {d.name}: " + throughput_line(json.loads((d / "stats.json").read_text())), flush=True)
    if cfg.until == "generate":
        return out / "adapter"
    stage(n + 1, "mix", lambda: print("  " + json.dumps(write_recipe_mix(cfg)), flush=True))
    if cfg.until == "mix":
        return out / "adapter"
    job_id = "recipe-" + hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:10]  # stable across runs
    stage(n + 2, "finetune", lambda: _finetune(cfg, job_id, log))
    if cfg.until == "finetune":
        return out / "adapter"
    stage(n + 3, "calibrate", lambda: _run(calibrate_command(cfg), log))
    stage(n + 4, "eval", lambda: _run(eval_command(cfg), log))
    stage(n + 5, "eval calibrated",
          lambda: _run(calibrated_eval_command(cfg, _calling(out)["call_threshold"]), log))
    if cfg.until == "eval":
        return out / "adapter"
    stage(n + 6, "card", lambda: write_card(cfg, timing))
    if cfg.ship:
        ship(cfg)
        print(f"shipped to {cfg.ship}", flush=True)
    return out / "adapter"


SWEEP_SUITES = "math,facts_plain,plain"  # calling, forgetting (as written), spurious calls


def sweep(cfg: RecipeConfig, ratios: list[float], steps: int, eval_limit: int) -> Path:
    """The call-free ratio swept on the recipe's finished generate runs, each point a short finetune and a small
    eval (tools and disabled modes) into ``<out>/sweep/ratio-R``; the rows are appended to
    ``<out>/experiments.md``, the run's own log. Resumable like the recipe (done points are skipped).
    At ``cfg.scale`` != 1 the steps and eval items scale as the recipe's do (``steps`` and ``eval_limit`` are the
    full-scale values)."""
    from toolformer_app.evaluation.suites import DEV_OFFSET
    from toolformer_app.files import atomic_write_text
    from toolformer_app.pipeline.mix import write_mix

    out = Path(cfg.out)
    gen_dirs = [out / "gen" / s.name for s in SOURCES]
    missing = [d.name for d in gen_dirs if not (d / "dataset.jsonl").exists()]
    if missing:
        raise ValueError(f"run the generate stages first (missing: {', '.join(missing)})")
    log = out / "recipe.log"
    full_steps, full_eval_limit = steps, eval_limit
    steps = cfg.scaled_steps(steps)
    eval_limit = cfg.scaled_eval_limit(eval_limit)
    rows = []
    for ratio in ratios:
        d = out / "sweep" / f"ratio-{ratio:g}"
        d.mkdir(parents=True, exist_ok=True)
        stats = write_mix(d / "mix.jsonl", gen_dirs, plain_ratio=ratio, max_calls_per_text=cfg.max_calls_per_text,
                          seed=cfg.seed)
        if not (d / "adapter" / "adapter_config.json").exists():
            job_id = "sweep-" + hashlib.sha256(str(d.resolve()).encode()).hexdigest()[:10]
            from toolformer_app.training import jobs

            _run([*_python(), "finetune", "--data", str(d / "mix.jsonl"), "--model", cfg.model, "--lora",
                  "--lora-r", str(cfg.lora_r), "--max-steps", str(steps), "--batch-size", str(cfg.batch_size),
                  "--lr", str(cfg.learning_rate), "--seed", str(cfg.seed), "--out", str(d / "adapter"),
                  "--job-id", job_id] + (["--resume"] if jobs._row(job_id) is not None else []), log)
        if not (d / "eval_dev" / "results.json").exists():  # the dev split: the choice is never made on reported items
            _run([*_python(), "eval", "--model", str(d / "adapter"), "--suites", SWEEP_SUITES, "--modes",
                  "tools,disabled", "--offset", str(DEV_OFFSET), "--limit", str(eval_limit), "--quiet",
                  "--out", str(d / "eval_dev")], log)
        res = json.loads((d / "eval_dev" / "results.json").read_text())["suites"]

        def acc(suite: str, mode: str, res=res) -> str:
            e = res.get(suite, {}).get(mode) or {}
            return "—" if e.get("accuracy") is None else f"{100 * e['accuracy']:.0f}"

        def calls(suite: str, res=res) -> str:
            e = res.get(suite, {}).get("tools") or {}
            return "—" if not e else f"{100 * e['call_rate']['any']:.0f}"

        rows.append(f"| ratio {ratio:g} | {stats.with_calls} with calls + {stats.plain} call-free "
                    f"({json.dumps(stats.calls_per_tool)}) | LoRA r={cfg.lora_r}, {steps} steps, lr "
                    f"{cfg.learning_rate} | {acc('math', 'tools')} / {calls('math')} | "
                    f"{acc('facts_plain', 'tools')} / {acc('facts_plain', 'disabled')} | {calls('plain')} |")
    scaled = f" --scale {cfg.scale:g}" if cfg.scale != 1.0 else ""
    head = [f"Call-free ratio sweep (`recipe --sweep {','.join(f'{r:g}' for r in ratios)}{scaled} --sweep-steps "
            f"{full_steps} --sweep-eval-limit {full_eval_limit}`"
            + (f": a scaled run, {steps} steps and {eval_limit} items" if scaled else "")
            + f"; eval on the dev split, items {DEV_OFFSET} to "
            f"{DEV_OFFSET + eval_limit - 1} of each suite, which no reported figure uses; k = 10):", "",
            "| run | data (mix) | lever | math tools acc / calls % | facts as written tools / disabled | "
            "plain calls % |", "|---|---|---|---|---|---|"]
    path = out / "experiments.md"
    previous = path.read_text() + "\n" if path.exists() else ""
    atomic_write_text(path, previous + "\n".join(head + rows) + "\n")
    print("\n".join(head + rows), flush=True)
    return path


def write_recipe_mix(cfg: RecipeConfig) -> dict[str, Any]:
    """The finetune's mix: the sources without a ratio of their own mixed together at ``plain_ratio``, and each
    other source mixed apart at its own ratio, added as one (``mix.add_mixes``); written atomically."""
    from toolformer_app.files import atomic_write_json, atomic_write_text, jsonl_text
    from toolformer_app.pipeline.mix import add_mixes, build_mix

    out = Path(cfg.out)
    groups = [[s for s in SOURCES if s.plain_ratio is None]] + [[s] for s in SOURCES if s.plain_ratio is not None]
    parts = [build_mix([out / "gen" / s.name for s in group],
                       plain_ratio=cfg.plain_ratio if group[0].plain_ratio is None else group[0].plain_ratio,
                       max_calls_per_text=cfg.max_calls_per_text, seed=cfg.seed) for group in groups]
    rows, stats = add_mixes(parts, seed=cfg.seed)
    stats |= {"sources": [str(out / "gen" / s.name) for s in SOURCES], "max_calls_per_text": cfg.max_calls_per_text,
              "seed": cfg.seed}
    atomic_write_text(out / "mix.jsonl", jsonl_text(rows))
    atomic_write_json(out / "mix.stats.json", stats)
    return stats


def _finetune(cfg: RecipeConfig, job_id: str, log: Path) -> None:
    from toolformer_app.training import jobs

    resume = jobs._row(job_id) is not None
    _run(finetune_command(cfg, job_id, resume), log)


def ship_data(cfg: RecipeConfig) -> Path:
    """Copy what the card is written from into the adapter's ``data/``: the training mix and its statistics, C*
    and the filter's statistics per source, the evaluations. A rerun copies them again (they may have changed)."""
    out = Path(cfg.out)
    data = out / "adapter" / model_card.DATA
    data.mkdir(parents=True, exist_ok=True)
    copies = [(out / "mix.jsonl", "mix.jsonl"), (out / "mix.stats.json", "mix.stats.json")]
    for s in SOURCES:
        copies += [(out / "gen" / s.name / "dataset.jsonl", f"cstar_{s.name}.jsonl"),
                   (out / "gen" / s.name / "stats.json", f"stats_{s.name}.json")]
    for name in ("results.json", "table.md"):
        copies += [(out / "eval" / name, f"eval_{name}"), (out / "eval_calibrated" / name, f"eval_calibrated_{name}")]
    for src, name in copies:
        if src.exists():
            shutil.copy2(src, data / name)
    return data


def _machine() -> dict[str, Any]:
    import os

    from toolformer_app.models import cpu_has_native_bf16

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_cores": cores, "native_bf16": cpu_has_native_bf16()}


def recipe_command(cfg: RecipeConfig) -> str:
    """The command that reruns this recipe (``make toolformer``'s for the shipped one), as the card shows it: its
    folders relative to the working directory, a placeholder for one outside it (a card names no machine's path)."""

    def folder(path: str) -> str:
        p = Path(path)
        if not p.is_absolute():
            return path
        try:
            return p.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return f"path/to/{p.name}"

    parts = ["python", "-m", "toolformer_app", "recipe", "--model", cfg.model, "--out", folder(cfg.out)]
    d = RecipeConfig()
    for flag, value, default in (("--scale", cfg.scale, d.scale), ("--plain-ratio", cfg.plain_ratio, d.plain_ratio),
                                 ("--max-steps", cfg.max_steps, d.max_steps),
                                 ("--batch-size", cfg.batch_size, d.batch_size),
                                 ("--lr", cfg.learning_rate, d.learning_rate), ("--kl-weight", cfg.kl_weight, d.kl_weight),
                                 ("--eval-limit", cfg.eval_limit, d.eval_limit)):
        if value != default:
            parts += [flag, f"{value:g}"]
    if cfg.ship:
        parts += ["--ship", folder(cfg.ship)]
    return shlex.join(parts)


def write_card(cfg: RecipeConfig, timing: dict[str, float]) -> Path:
    """The adapter's model card: its ``data/`` (``ship_data``), the recipe's command, settings and stage times in
    toolformer_card.json ("recipe"), then README.md from those files alone (``models.model_card``)."""
    from toolformer_app.files import atomic_write_json
    from toolformer_app.models import CARD_NAME

    adapter = Path(cfg.out) / "adapter"
    ship_data(cfg)
    path = adapter / CARD_NAME
    card = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    settings: dict[str, Any] = {k: v for k, v in cfg.__dict__.items() if k not in ("out", "ship", "until")}
    settings["effective"] = cfg.effective()
    card["recipe"] = {
        "name": SHIPPED_NAME if cfg.model == "smollm2-135m" else Path(cfg.out).name,
        "command": recipe_command(cfg), "settings": settings,
        **({"note": f"{cfg.scale_line()}. {SCALE_NOTE}"} if cfg.scale != 1.0 else {}),
        "timing_s": {k: v for k, v in timing.items() if k != "card"}, "machine": _machine()}
    atomic_write_json(path, card)
    return model_card.write(adapter)


def ship(cfg: RecipeConfig) -> None:
    """Copy the adapter folder, with its card and ``data/``, to ``cfg.ship`` (atomically), and write the card
    again there: it names the shipped preset and links the docs from where it now lies."""
    out, dest = Path(cfg.out), Path(cfg.ship or "")
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out / "adapter", tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    model_card.write(dest)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipe", help="rebuild the shipped tool-using model: generate -> mix -> LoRA finetune -> eval -> card",
        description="Runs every stage as a subprocess into --out; rerunning the same command resumes "
        "(Ctrl-C is safe). With the default model on 2 CPU cores with native bf16 it takes about 30 minutes (27.5 "
        "measured at commit 257a648); where bf16 is emulated, every stage runs in float32, slower. " + SCALE_NOTE,
    )
    d = RecipeConfig()
    p.add_argument("--model", default=d.model, help="base model: preset, hub id or directory")
    p.add_argument("--out", default=d.out, help="working directory (resumable)")
    p.add_argument("--scale", type=float, default=d.scale, help="a small run in the recipe's proportions: multiply every corpus size and scale the finetune, eval and calibration with "
                   "it (0.05: a smoke run; see above)")
    p.add_argument("--plain-ratio", type=float, default=d.plain_ratio, help="call-free texts per text with calls")
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--kl-weight", type=float, default=d.kl_weight,
                   help="KL to the base on call-free tokens in the finetune, against forgetting (default 0: off)")
    p.add_argument("--eval-limit", type=int, default=d.eval_limit)
    p.add_argument("--ship", default=None, help="copy the adapter, card and C* here when done")
    p.add_argument("--until", choices=["generate", "mix", "finetune", "eval"], default=None,
                   help="stop after this stage (rerun without it to go on)")
    p.add_argument("--dry-run", action="store_true", help="print the stages and what is done, run nothing")
    p.add_argument("--sweep", default=None, metavar="RATIOS",
                   help="instead of the recipe: sweep the call-free ratio (e.g. 1,2,4) on the finished generate runs")
    p.add_argument("--sweep-steps", type=int, default=40, help="finetune steps per sweep point")
    p.add_argument("--sweep-eval-limit", type=int, default=30, help="eval items per suite per sweep point")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cfg = RecipeConfig(model=args.model, out=args.out, scale=args.scale, plain_ratio=args.plain_ratio,
                       max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr,
                       kl_weight=args.kl_weight, eval_limit=args.eval_limit, ship=args.ship, until=args.until)
    if cfg.scale <= 0 or cfg.max_steps < 1 or cfg.eval_limit < 1 or cfg.plain_ratio < 0 or not cfg.kl_weight >= 0:
        print("error: --scale, --max-steps and --eval-limit must be positive, --plain-ratio and --kl-weight >= 0",
              file=sys.stderr)
        return 2
    if args.sweep:
        try:
            ratios = [float(x) for x in args.sweep.split(",") if x.strip()]
            sweep(cfg, ratios, args.sweep_steps, args.sweep_eval_limit)
        except (RuntimeError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.dry_run:
        if cfg.scale != 1.0:
            print(cfg.scale_line())
        for name, done in plan(cfg):
            print(f"{'done' if done else 'todo'}  {name}")
        return 0
    out = Path(cfg.out)  # as `generate`: never write into a folder that holds something else
    if out.exists() and (not out.is_dir() or (not (out / "recipe.json").exists()
                                              and any(not p.name.startswith(".") for p in out.iterdir()))):
        print(f"error: {out} is not empty and holds no previous recipe; use a new --out", file=sys.stderr)
        return 2
    try:
        adapter = run_recipe(cfg)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    if cfg.until:
        print(f"stopped after {cfg.until}: rerun without --until to go on")
    else:
        print(f"adapter and model card in {adapter}")
    return 0

