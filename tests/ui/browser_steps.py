"""What a person does in each tab, as Playwright steps: shared by the browser tests and take_screenshots.py."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MODEL_TIMEOUT_MS = 180_000  # a real model pass on a busy 2-core CPU


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def set_number(page: Page, elem_id: str, value: float | int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Tab")


def annotate(page: Page, text: str, tools: tuple[str, ...] = ("Calculator",), k: int | None = 2,
             m: int | None = 2) -> None:
    """Type a text, choose tools (and k, m in Advanced), click Annotate, wait for the candidates table."""
    open_tab(page, "Annotate")
    page.locator("#annotate-text textarea").fill(text)
    group = page.locator("#annotate-tools")
    for name in ("Calculator", "Calendar", "WikiSearch", "QA", "MT"):
        box = group.get_by_label(name, exact=True)
        if box.is_checked() != (name in tools):
            box.click()
    if k is not None or m is not None:
        page.get_by_text("Advanced: τs, k, m, temperature").click()
        page.get_by_label("Use each tool's defaults (τs, k, m)").uncheck()
        if k is not None:
            set_number(page, "annotate-k", k)
        if m is not None:
            set_number(page, "annotate-m", m)
    page.locator("#annotate-run").click()
    expect(page.locator("#annotate-summary")).to_contain_text("well-formed calls", timeout=MODEL_TIMEOUT_MS)


def load_candidates(page: Page, path: Path) -> None:
    """Upload a candidates.jsonl in the filter tab."""
    open_tab(page, "Loss reductions & filter")
    page.locator("#filter-upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#filter-kept")).to_contain_text("Kept at", timeout=30_000)
    expect(page.locator("#filter-kept")).to_contain_text("uploaded", timeout=30_000)


def move_tau(page: Page, value: float) -> None:
    """Drag the τf slider to ``value`` (the range input gets the value, as a drag would give it)."""
    page.locator("#filter-tau input[type=range]").fill(str(value))


def finetune_tiny(page: Page, steps: int = 3, max_length: int = 32, eval_every: int = 3, batch: int = 2) -> None:
    """Launch a few steps on the shipped example dataset and wait for the job to succeed."""
    open_tab(page, "Finetune")
    expect(page.locator("#finetune-device")).to_contain_text("PU:", timeout=MODEL_TIMEOUT_MS)  # CPU: / GPU:
    page.locator("#finetune-dataset input").click()
    page.get_by_role("option", name="example: 12 Calculator texts", exact=False).click()
    set_number(page, "finetune-steps", steps)
    set_number(page, "finetune-maxlen", max_length)
    set_number(page, "finetune-batch", batch)
    set_number(page, "finetune-eval-every", eval_every)
    page.locator("#finetune-launch").click()
    expect(page.locator("#finetune-message")).to_contain_text("Started", timeout=60_000)
    expect(page.locator("#finetune-status")).to_contain_text("succeeded", timeout=MODEL_TIMEOUT_MS * 2)
    expect(page.locator("#finetune-progress")).to_contain_text(f"step {steps}/{steps}", timeout=30_000)


def chat_example(page: Page, compare: bool = False, example: str = "The farm has 48 cows") -> None:
    """Pick an example prompt, send it, wait for the highlighted call (and the comparison)."""
    open_tab(page, "Chat")
    if compare:
        page.get_by_label("Compare with tools disabled").check()
    page.get_by_role("button", name=example).first.click()
    expect(page.locator("#chat-input textarea")).not_to_have_value("")
    page.locator("#chat-send").click()
    expect(page.locator("#chat-tools mark.tool-Calculator").first).to_be_visible(timeout=MODEL_TIMEOUT_MS)
    expect(page.locator("#chat-stats")).to_contain_text("tools disabled" if compare else "with tools",
                                                        timeout=MODEL_TIMEOUT_MS)


def chat_tools(page: Page, enabled: tuple[str, ...]) -> None:
    """Tick exactly ``enabled`` among Chat's tools."""
    open_tab(page, "Chat")
    group = page.locator("#chat-tools-enabled")
    for name in ("Calculator", "Calendar", "WikiSearch", "QA", "MT"):
        box = group.get_by_label(name, exact=True)
        if box.is_checked() != (name in enabled):
            box.click()


def chat_question(page: Page, question: str) -> None:
    """Type a plain question in Chat with the default settings (shipped model, paper prompt style), send it,
    and wait until the answer is complete."""
    open_tab(page, "Chat")
    page.locator("#chat-input textarea").fill(question)
    page.locator("#chat-send").click()
    expect(page.locator("#chat-stats")).to_contain_text("with tools", timeout=MODEL_TIMEOUT_MS)
