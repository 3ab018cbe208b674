"""A decoding server: generation requests from every Chat session join one running batch.

One thread per model owns a ``batched.BatchDecoder`` and steps it while any row is live. A request
joins at a next step and leaves when it ends (continuous batching); its events go to its own queue,
so each session streams its text, "call started", "call executed" and "done" as they happen, and
gets exactly what ``generate_with_tools`` gives it alone (float32). Tools run in a small thread
pool: a slow tool (QA and its reader) holds up only its own row.

Limits (``Limits``): at most ``max_rows`` rows in a pass, ``step_tokens`` rows x chunk tokens per pass,
and ``max_waiting`` requests queued in arrival order behind them; a request over the limits (too many
new tokens, too long a prompt, a full queue) is refused with one line before it joins. Requests whose
prompts start alike (the same few-shot examples) share that start's KV, computed once (``prefix_cache``).
An idle server waits a moment (``gather_s``) for requests sent together, which then start in one pass.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from toolformer_app.decoding.config import InferenceConfig
from toolformer_app.decoding.events import Done, Event
from toolformer_app.decoding.row import RowDecoder, eos_token_ids
from toolformer_app.decoding.threads import trim_heap


class Refused(RuntimeError):
    """A request the server will not take; the message is one line for the user."""


@dataclass(frozen=True)
class Limits:
    max_rows: int = 8  # rows decoded together
    max_waiting: int = 32  # requests queued behind them (beyond: refused)
    max_new_tokens: int = 256
    max_prompt_tokens: int = 2048
    step_tokens: int = 256  # rows x chunk length in one pass: a long feed is split, never stalls the rest
    tool_workers: int = 2
    idle_s: float = 120.0  # an idle server stops (and lets its model go); the next request starts another
    # Reuse the KV of prompt starts shared by requests (few-shot preambles). `bench chat --prefix-cache both`,
    # the two measured in turn: as many tok/s or more at 8 sessions, and a lower p95 time to first token.
    prefix_cache: bool = True
    # An idle server that gets a request waits this long for others sent with it (each arrival restarts the
    # wait, 4x this at most), so that requests sent together are prefilled in one pass, not one after another.
    gather_s: float = 0.02


_END = object()  # the last item of a ticket's queue


class Ticket:
    """One request: iterate ``events()`` for its events (the last one ``Done``); ``cancel()`` stops it."""

    def __init__(self, server: DecodingServer):
        self._server = server
        self._queue: queue.Queue[Any] = queue.Queue()
        self.rid: int | None = None
        self.cancelled = False
        self.error: str | None = None

    def _put(self, event: Event) -> None:
        self._queue.put(event)
        if isinstance(event, Done):
            self._queue.put(_END)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """The events as they come; stops after Done, a cancel, or an error (RuntimeError with one line)."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError("no event from the decoding server in time") from None
            if item is _END:
                if self.error:
                    raise RuntimeError(self.error)
                return
            yield item

    def cancel(self) -> None:
        """Remove this request's row (the others go on); its events stop."""
        if not self.cancelled:
            self.cancelled = True
            self._server._inbox.put(("cancel", self, None))


class DecodingServer:
    """Continuous batching over one model; ``submit`` from any thread."""

    def __init__(self, model: Any, tokenizer: Any, limits: Limits | None = None):
        from toolformer_app.decoding.batch import BatchDecoder

        self.model, self.tok, self.limits = model, tokenizer, limits or Limits()
        self.eos_ids = eos_token_ids(model, tokenizer)
        self._pool = ThreadPoolExecutor(self.limits.tool_workers, thread_name_prefix="tool")
        self.decoder = BatchDecoder(model, tokenizer, max_rows=self.limits.max_rows,
                                    step_tokens=self.limits.step_tokens, executor=self._pool,
                                    prefix_cache=self.limits.prefix_cache)
        self._inbox: queue.Queue[tuple[str, Ticket, Any]] = queue.Queue()
        self._tickets: dict[int, Ticket] = {}
        self._queued = 0  # requests submitted and not yet taken by the loop, plus waiting rows
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="decoding-server", daemon=True)
        self._thread.start()

    def submit(self, prompt: str, tools: Mapping[str, Any] | None = None,
               config: InferenceConfig | None = None) -> Ticket:
        """Queue a generation with tools; raises Refused (one line) when it exceeds the limits."""
        cfg = config or InferenceConfig()
        lim = self.limits
        if cfg.max_new_tokens > lim.max_new_tokens:
            raise Refused(f"at most {lim.max_new_tokens} new tokens per answer here")
        decoder = RowDecoder(self.tok, tools or {}, cfg, self.eos_ids)
        if len(decoder.encode_prompt(prompt)) > lim.max_prompt_tokens:
            raise Refused(f"the prompt is longer than {lim.max_prompt_tokens} tokens")
        ticket = Ticket(self)
        with self._lock:
            if self._closed:
                raise _Closed
            if self._queued + len(self.decoder.waiting) >= lim.max_rows + lim.max_waiting:
                raise Refused("the server is busy: try again in a moment")
            self._queued += 1
            self._inbox.put(("submit", ticket, decoder.steps(prompt)))
        return ticket

    def _take(self, kind: str, ticket: Ticket, steps: Any) -> None:
        if kind == "submit":
            with self._lock:
                self._queued -= 1
            if ticket.cancelled:
                steps.close()
                ticket._queue.put(_END)
                return
            ticket.rid = self.decoder.submit_steps(steps, ticket._put)
            self._tickets[ticket.rid] = ticket
        elif kind == "cancel" and ticket.rid is not None:
            if self.decoder.cancel(ticket.rid):
                ticket._queue.put(_END)

    def _gather(self) -> None:
        """Take the requests that follow an idle server's first one closely (``Limits.gather_s`` apart)."""
        wait_s = self.limits.gather_s
        deadline = time.monotonic() + 4 * wait_s
        while wait_s > 0 and len(self.decoder.waiting) < self.limits.max_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._take(*self._inbox.get(timeout=min(wait_s, left)))
            except queue.Empty:
                return

    def _loop(self) -> None:
        idle_since, was_busy = time.monotonic(), False
        while not self._closed:
            block = not self.decoder.busy
            try:
                while True:  # every request that came in joins at this step
                    self._take(*self._inbox.get(block=block, timeout=0.5 if block else None))
                    if block:
                        self._gather()
                    block = False
            except queue.Empty:
                pass
            if not self.decoder.busy:
                if was_busy:  # the last row ended: the pages its KV caches held go back to the system
                    trim_heap()
                    was_busy = False
                if time.monotonic() - idle_since > self.limits.idle_s:
                    with self._lock:
                        if self._inbox.empty():
                            self._closed = True
                    if self._closed:
                        break
                continue
            idle_since, was_busy = time.monotonic(), True
            try:
                self.decoder.step()
            except Exception as exc:  # a failing pass ends every row with one line, never the server
                message = f"decoding failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                for rid in list(self.decoder.by_id):
                    self.decoder.cancel(rid)
                for ticket in self._tickets.values():
                    ticket.error = message
                    ticket._queue.put(_END)
                self._tickets.clear()
                self.decoder.rows, self.decoder.cache = [], None
                self.decoder.mask = self.decoder.mask.new_zeros((0, 0))
                continue
            for rid in [r for r in self._tickets if r not in self.decoder.by_id]:
                del self._tickets[rid]

        self._pool.shutdown(wait=False, cancel_futures=True)
        with _SERVERS_LOCK:
            if _SERVERS.get(id(self.model)) is self:
                del _SERVERS[id(self.model)]

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._thread.join(timeout=5)


class _Closed(Exception):
    """The server stopped between ``server_for`` and ``submit``."""


_SERVERS: dict[int, DecodingServer] = {}  # id(model) -> its server, while the server runs
_SERVERS_LOCK = threading.Lock()


def server_for(model: Any, tokenizer: Any, limits: Limits | None = None) -> DecodingServer:
    """The shared server of ``model`` (one per loaded model, started on first use)."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(id(model))
        if server is None or server._closed:
            server = _SERVERS[id(model)] = DecodingServer(model, tokenizer, limits)
        return server


def serve(model: Any, tokenizer: Any, prompt: str, tools: Mapping[str, Any] | None = None,
          config: InferenceConfig | None = None, limits: Limits | None = None) -> Ticket:
    """Submit a generation to ``model``'s shared server (started when needed); raises Refused."""
    for _ in range(3):
        try:
            return server_for(model, tokenizer, limits).submit(prompt, tools, config)
        except _Closed:  # it stopped for idleness in between: the next call starts a new one
            continue
    raise Refused("the decoding server could not start")
