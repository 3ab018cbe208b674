"""The Gradio app: one module per tab (annotate, filter, finetune, chat, evaluate), shared rendering in
``render``, process-wide model state in ``runtime``, and ``blocks.build_demo`` assembling them.

Import ``gradio`` only after ``config.setup_offline_env()`` (app.py does it first)."""

from __future__ import annotations


def build_demo():
    from toolformer_app.ui.blocks import build_demo as _build

    return _build()


def launch_kwargs():
    from toolformer_app.ui.blocks import launch_kwargs as _kwargs

    return _kwargs()


__all__ = ["build_demo", "launch_kwargs"]
