"""`generate`: an --out that cannot be written, a model that fails to load, and a huge single-line text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from toolformer_app import cli

REPO = Path(__file__).resolve().parents[2]


def _texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text(json.dumps({"text": "Out of 1400 participants, 400 passed the test."}) + "\n")
    return path


def test_an_out_that_cannot_be_made_is_one_line_and_rc_2(tmp_path):
    blocker = tmp_path / "ro"
    blocker.write_text("a file, so nothing can be made under it (root ignores a read-only mode)")
    proc = subprocess.run([sys.executable, "-m", "toolformer_app", "generate", "--input", str(_texts(tmp_path)),
                           "--out", str(blocker / "sub"), "--model", "/nonexistent/model"], cwd=REPO,
                          env={**os.environ, "TOOLFORMER_DATA_DIR": str(tmp_path / "d")}, capture_output=True,
                          text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in proc.stderr


def test_a_model_that_fails_to_load_leaves_no_run_to_refuse_the_next_command(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["generate", "--input", str(_texts(tmp_path)), "--out", str(out), "--model", "/nonexistent/m"])
    assert code == 2 and "/nonexistent/m" in capsys.readouterr().err
    assert not (out / "config.json").exists() and not out.exists()
    existing = tmp_path / "kept"  # a folder the user made is left in place, empty
    existing.mkdir()
    cli.main(["generate", "--input", str(_texts(tmp_path)), "--out", str(existing), "--model", "/nonexistent/m"])
    assert existing.is_dir() and not any(existing.iterdir())


def test_a_huge_single_line_text_is_cut_with_one_warning(tmp_path, monkeypatch, capsys):
    from toolformer_app import models
    from toolformer_app.pipeline import run as pr

    monkeypatch.setenv("TOOLFORMER_MAX_TEXT_CHARS", "5000")
    big = tmp_path / "big.txt"
    big.write_text("word " * 2_000_000)  # 10 MB on one line
    seen: list[int] = []
    monkeypatch.setattr(models, "load", lambda *a, **k: (object(), object()))
    monkeypatch.setattr(pr, "annotate_batch", lambda model, tok, items, tools, cfg: seen.extend(
        len(it[1]) for it in items) or [])
    monkeypatch.setattr(pr, "finalize", lambda out, cfg: {"texts_seen": 0, "texts_kept": 0, "kept_at_tau_f": 0,
                                                           "kept_table": {}})
    import toolformer_app.pipeline.filtering as filtering

    monkeypatch.setattr(filtering, "throughput_line", lambda stats: "")
    code = cli.main(["generate", "--input", str(big), "--out", str(tmp_path / "out"), "--tools", "Calculator"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert code == 0 and seen == [5000], seen
    assert len(warnings) == 1 and "9,999,999 characters" in warnings[0] and "TOOLFORMER_MAX_TEXT_CHARS" in warnings[0]


def test_annotate_batch_tokenizes_only_a_bounded_prefix(real_tokenizer):
    from toolformer_app.pipeline import run as pr
    from toolformer_app.pipeline.config import PipelineConfig

    class NoModel:  # no tool selects the text, so no model pass happens
        pass

    text = "x" * 5_000_000
    result = pr.annotate_batch(NoModel(), real_tokenizer, [("t", text)], [], PipelineConfig(tools=("Calculator",)))
    assert len(result[0].text) <= pr.MAX_TEXT_TOKENS * pr.MAX_CHARS_PER_TOKEN
