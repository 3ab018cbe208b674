"""Screenshots of every tab of the real app, as the README shows them: `python -m tests.ui.take_screenshots`.

Launches the app offline on 127.0.0.1 (a fresh data dir in a temp folder), drives each tab in
Debian's Chromium with the same steps as the browser tests, and writes assets/screenshots/*.png.
Takes 2-4 minutes on a CPU (real default model: an annotation, a tiny finetune, a chat, a short eval).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT), help="directory for the PNGs (default assets/screenshots)")
    parser.add_argument("--tabs", default="annotate,filter,finetune,chat,evaluate",
                        help="comma-separated tabs to capture")
    parser.add_argument("--chromium", default=os.environ.get("TOOLFORMER_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    tabs = {t.strip() for t in args.tabs.split(",") if t.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("TOOLFORMER_MODEL_CACHE", str(ROOT / "runs" / "models"))
    os.environ["TOOLFORMER_DATA_DIR"] = tempfile.mkdtemp(prefix="toolformer-shots-")
    from toolformer_app import config

    config.setup_offline_env()
    from playwright.sync_api import expect, sync_playwright

    from tests.ui import browser_steps as steps
    from toolformer_app.ui import build_demo, launch_kwargs

    demo = build_demo()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True,
                            **launch_kwargs())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(url)

            def shot(name: str) -> None:
                page.wait_for_timeout(800)  # let plots and transitions settle
                path = out / f"{name}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

            if tabs & {"annotate", "filter", "finetune"}:
                steps.annotate(page, (steps.ASSETS / "examples" / "orchard.txt").read_text().strip(), k=3, m=3)
                if "annotate" in tabs:
                    shot("annotate")
            if "filter" in tabs:
                steps.open_tab(page, "Loss reductions & filter")
                expect(page.locator("#filter-kept")).to_contain_text("Kept at")
                shot("filter")
            if "finetune" in tabs:
                steps.finetune_tiny(page, steps=6, max_length=48, eval_every=2)
                shot("finetune")
            if "chat" in tabs:  # a question the shipped model answers through QA, beside the same model without tools
                steps.open_tab(page, "Chat")
                page.get_by_label("Compare with tools disabled").check()
                steps.chat_question(page, "What is the capital of Australia?")
                expect(page.locator("#chat-stats")).to_contain_text("tools disabled", timeout=steps.MODEL_TIMEOUT_MS)
                page.locator("#chat-tools").scroll_into_view_if_needed()
                shot("chat")
            if "evaluate" in tabs and page.get_by_role("tab", name="Evaluate").count():
                steps.open_tab(page, "Evaluate")
                page.locator("#eval-limit input[type=number]").fill("3")
                page.locator("#eval-run").click()
                expect(page.locator("#eval-table")).to_contain_text("Model:", timeout=steps.MODEL_TIMEOUT_MS * 2)
                shot("evaluate")
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
