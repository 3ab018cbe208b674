"""Toolformer Studio: `python app.py` serves the app (offline by default; the same file runs as a Space).

Environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860, 0.0.0.0 on a Space),
TOOLFORMER_DATA_DIR, TOOLFORMER_DEFAULT_MODEL, TOOLFORMER_ADMIN_TOKEN, HF_TOKEN (see README).
"""

from __future__ import annotations

import os

from toolformer_app import config

config.setup_offline_env()  # before gradio is imported: no telemetry, no hub calls unless configured


def main() -> None:
    try:
        config.check_settings()  # once, before anything is served: a bad limit would break every handler
    except config.SettingError as exc:
        raise SystemExit(f"error: {exc}") from None
    from toolformer_app.ui import build_demo, launch_kwargs
    from toolformer_app.ui.queue_guard import configure_queue
    from toolformer_app.ui.runtime import preload_in_background

    demo = build_demo()
    preload_in_background(config.default_model())  # the page is served at once; the status line shows the load
    default_host = "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"
    configure_queue(demo).launch(  # the queue's bounds on a public deployment
        server_name=os.environ.get("GRADIO_SERVER_NAME", default_host),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(),
    )


if __name__ == "__main__":
    main()
