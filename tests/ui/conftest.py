"""Fixtures for the UI tests: one launched app per session, a gradio_client per test, Playwright + Chromium.

The launched app serves from a session data dir: tests that use it (``app_url``, ``client``, ``page``)
run with TOOLFORMER_DATA_DIR pointing there, since the app reads the data dir at request time.
Handler tests keep the per-test data dir of tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TOOLFORMER_CHROMIUM", "/usr/bin/chromium")
APP_FIXTURES = {"app_url", "client", "page", "browser"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ui_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ui-data")


@pytest.fixture(autouse=True)
def _isolated_data_dir(request, tmp_path, monkeypatch):
    """Overrides the repo-wide fixture: the launched app's tests share its session data dir."""
    if APP_FIXTURES & set(request.fixturenames):
        monkeypatch.setenv("TOOLFORMER_DATA_DIR", str(request.getfixturevalue("ui_data_dir")))
    else:
        monkeypatch.setenv("TOOLFORMER_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def app_url(ui_data_dir):
    """Build the real app and serve it on 127.0.0.1 at a free port for the whole session."""
    old = os.environ.get("TOOLFORMER_DATA_DIR")
    os.environ["TOOLFORMER_DATA_DIR"] = str(ui_data_dir)
    from toolformer_app.ui import build_demo, launch_kwargs
    from toolformer_app.ui.queue_guard import configure_queue

    demo = configure_queue(build_demo())  # as app.py: the public bounds apply while a test sets SPACE_ID
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                            quiet=True, **launch_kwargs())
    try:
        yield url
    finally:
        demo.close()
        _stop_jobs()
        if old is None:
            os.environ.pop("TOOLFORMER_DATA_DIR", None)
        else:
            os.environ["TOOLFORMER_DATA_DIR"] = old


def _stop_jobs() -> None:
    """Never leave a finetune process behind."""
    try:
        from toolformer_app import training

        for job in training.list_jobs():
            if job.active:
                training.cancel_job(job.id, grace_s=10)
    except Exception:
        pass


@pytest.fixture
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright. Missing: fail under CI, skip otherwise."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install playwright; never `playwright install`)"
    if missing is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"Chromium not found at {CHROMIUM} (apt-get install chromium, or `make chromium`)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium under CI: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    pg.goto(app_url)
    pg.wait_for_selector("#tab-annotate, #annotate-text", state="attached")
    try:
        yield pg
    finally:
        context.close()
