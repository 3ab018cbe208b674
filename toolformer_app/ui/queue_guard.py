"""Bounds on what one visitor can put in front of everyone else: the queue's size, and the model-bound
events one client address may have waiting or running at once.

Gradio runs an event posted to ``/gradio_api/queue/join`` whether or not its client ever reads the
results, so a script of cheap POSTs could otherwise queue thousands of annotations. The per-client
bound is checked when an event joins (``Queue.push``); a refused join gets Gradio's own "queue full"
answer (HTTP 503), which its clients show as an error.
"""

from __future__ import annotations

import os
from typing import Any

from toolformer_app import config
from toolformer_app.ui.runtime import MODEL_CONCURRENCY

HEAVY = (MODEL_CONCURRENCY, "chat")  # the concurrency ids of events that run a model
REFUSAL = ("Too many requests from your address are already waiting or running; wait for them to finish "
           "(TOOLFORMER_MAX_QUEUED_PER_CLIENT).")


def client_key(request: Any) -> str:
    """The client address: on a Space the first X-Forwarded-For hop (the proxy's own address is the same for
    everyone), elsewhere the socket's peer."""
    if os.environ.get("SPACE_ID"):
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded.strip():
            return forwarded.split(",")[0].strip()
    client = getattr(request, "client", None)
    return client.host if client is not None else "unknown"


def _heavy(fn: Any) -> bool:
    return getattr(fn, "concurrency_id", None) in HEAVY


def pending(queue: Any, key: str) -> int:
    """Model-bound events of client ``key`` that are waiting or running."""
    events = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
    events += [e for job in queue.active_jobs if job for e in job]
    return sum(1 for e in events if _heavy(e.fn) and e.request is not None and client_key(e.request) == key)


def configure_queue(demo: Any) -> Any:
    """``demo.queue(...)`` with the public bounds. They are read from the settings at each join
    (config.max_queue_size, config.max_queued_per_client), so they follow the deployment's profile."""
    demo.queue(default_concurrency_limit=1, max_size=config.max_queue_size())
    queue = demo._queue
    push = queue.push

    async def bounded_push(body: Any, request: Any, username: Any) -> Any:
        queue.max_size = config.max_queue_size()  # Gradio checks it in push
        limit = config.max_queued_per_client()
        fn = queue.blocks.fns.get(body.fn_index) if body.fn_index is not None else None
        if limit is not None and fn is not None and _heavy(fn) and pending(queue, client_key(request)) >= limit:
            return False, REFUSAL, "queue_full"
        return await push(body, request, username)

    queue.push = bounded_push
    return demo
