"""A quota on Gradio's upload route on a public deployment: the bytes one client address, and all clients
together, may have posted to ``/gradio_api/upload`` within the upload cache's lifetime.

Gradio keeps every uploaded file in its cache for up to a day (``blocks.CACHE_CLEANUP``), whoever sent it
and whether or not a handler ever reads it, so without a bound one client could fill the disk (and a full
disk tears the job store). Each request is counted at its declared size before Gradio reads it: an upload
without a Content-Length, or one that would pass either bound, is refused with HTTP 413 and one line.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from toolformer_app import config

WINDOW_S = 86400.0  # files older than this are deleted from the cache (blocks.CACHE_CLEANUP)
CLIENT_SHARE = 5  # one client may use a fifth of the total (and at least one upload's worth)

_ledger: dict[str, collections.deque[tuple[float, int]]] = {}
_lock = threading.Lock()


def _client(scope: dict[str, Any]) -> str:
    import os

    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    if os.environ.get("SPACE_ID") and headers.get("x-forwarded-for", "").strip():
        return headers["x-forwarded-for"].split(",")[0].strip()  # the proxy's own address is everyone's
    client = scope.get("client")
    return client[0] if client else "unknown"


def _used(now: float) -> dict[str, int]:
    """Bytes per client within the window (older entries are dropped)."""
    out = {}
    for key in list(_ledger):
        entries = _ledger[key]
        while entries and now - entries[0][0] > WINDOW_S:
            entries.popleft()
        if entries:
            out[key] = sum(size for _, size in entries)
        else:
            del _ledger[key]
    return out


def admit(client: str, size: int) -> str | None:
    """Record an upload of ``size`` bytes from ``client``; the refusal text instead when it does not fit."""
    total_cap = config.max_upload_cache_bytes()
    client_cap = max(config.max_upload_bytes(), total_cap // CLIENT_SHARE)
    now = time.time()
    with _lock:
        used = _used(now)
        if used.get(client, 0) + size > client_cap:
            return (f"Upload refused: this address has uploaded {client_cap / 1e6:.0f} MB today, its share of "
                    "the upload cache (TOOLFORMER_MAX_UPLOAD_CACHE_MB).")
        if sum(used.values()) + size > total_cap:
            return (f"Upload refused: the upload cache is full ({total_cap / 1e6:.0f} MB, "
                    "TOOLFORMER_MAX_UPLOAD_CACHE_MB); try again later.")
        _ledger.setdefault(client, collections.deque()).append((now, size))
    return None


def reset() -> None:
    with _lock:
        _ledger.clear()


class UploadQuota:
    """ASGI middleware: on a public deployment, POSTs to the upload route are admitted by ``admit``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope.get("type") != "http" or scope.get("method") != "POST"
                or not scope.get("path", "").rstrip("/").endswith("/upload") or not config.public()):
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-length"), None)
        try:
            size = int(length) if length is not None else -1
        except ValueError:
            size = -1
        refusal = "Upload refused: send a Content-Length." if size < 0 else admit(_client(scope), size)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        body = refusal.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
