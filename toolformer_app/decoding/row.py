"""Decoding with tools (paper, section 4.2): pause at "->", run the tool, resume from the KV cache.

The loop is a coroutine (``RowDecoder.steps``) that asks its driver for forward passes (``Feed``,
``Crop``): ``drive`` answers them at batch 1 with the model's KV cache (``generate_with_tools``), and
``batched.BatchDecoder`` answers many rows in one pass, so both make the very same decisions. One token
at a time:
- Outside a call: when a call is allowed and " [" is among the ``top_k_call`` most likely next
  tokens, " [" is forced (k=1 is plain greedy, k=0 never calls). When no call is allowed
  (``disabled``, ``top_k_call=0`` or ``max_calls`` reached) the logit of " [" is set to -inf:
  "Toolformer (disabled)" sets p(" [") to 0. Only the " [" token is masked, as in the paper.
- Inside a call, tokens are decoded as usual (greedy or sampled, " [" masked) and the call's own
  text is re-decoded from its few token ids at each step (never the whole text). "->" and "]" are
  detected on that decoded text, never on token ids: tokenizers merge ")]", "()]" and " ->".
- At ")" + "->", the tool runs and the tokens of " " + r + "]" are appended to the existing cache,
  together with the arrow token, in one forward pass of just those tokens. The prefix is never re-encoded
  (``stats.prefix_tokens_reencoded`` stays 0, and is checked by the tests and the bench).

How a call ends (every one emits ``CallExecuted`` and counts toward ``max_calls``; nothing raises):
- tool answered: " [Tool(input) -> r]", ok=True;
- unknown tool, tool raised or gave no result: " [Tool(input) -> ]" (e(c, eps)), ok=False + reason;
- the model wrote "]" before "->" (e.g. ")]"): its text is kept as written, ok=False, no tool runs;
- no "Name(" after "[", a newline or eos inside the call, longer than ``max_call_tokens``, or out
  of tokens: the offending token is dropped and "]" is appended (no arrow was written), ok=False.
- A token that completes "->" and carries more text (e.g. "->5") is not fed to the model: the text
  up to the arrow is re-tokenised together with " r]", so the call always reads " [T(x) -> r]".

``max_new_tokens`` counts the tokens the model chose (forced " [" included), not the injected
tool results. The model is only read: no global mutable state, so threads can share it.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import torch

from toolformer_app.calls import API_END, API_START, find_open_call, sanitize
from toolformer_app.decoding.config import InferenceConfig
from toolformer_app.decoding.events import (
    CallExecuted,
    CallStarted,
    Crop,
    Done,
    Event,
    Feed,
    GenerationStats,
    Result,
    RunTool,
    Steps,
    TextChunk,
)
from toolformer_app.pipeline.sampling import clause_before

_NAME_PREFIX = re.compile(r"\[[A-Za-z_]\w*\(|\[[A-Za-z_]\w*$|\[$")  # still able to become "[Name("
_NAME_OPEN = re.compile(r"\[[A-Za-z_]\w*\(")
_ARROW = re.compile(r"\)\s*->")


# -- tools --------------------------------------------------------------------------------------------
def _lookup(tools: Mapping[str, Any], name: str) -> Any | None:
    if name in tools:
        return tools[name]
    low = name.lower()  # a lossy tokenizer or model may change the case of a name
    return next((t for n, t in tools.items() if n.lower() == low), None)


def execute_tool(tools: Mapping[str, Any], name: str, input: str) -> tuple[str | None, str]:
    """(output, reason): output None with the reason when there is no usable result. Never raises."""
    tool = _lookup(tools, name)
    if tool is None:
        return None, f"unknown tool {name!r}"
    try:
        if callable(getattr(tool, "run", None)) and getattr(tool, "is_toolformer_tool", False):
            res = tool.run(input)  # Tool.run returns ToolResult(output|None, reason)
            value, reason = res.output, res.reason
        else:
            from toolformer_app.calls import call_function as _call_registry_fn

            value, reason = _call_registry_fn(tool, input), ""
    except Exception as exc:  # a tool's failure must never break decoding
        return None, f"{type(exc).__name__}: {exc}"
    if value is None or not str(value).strip():
        return None, reason or "no result"
    return sanitize(str(value)).strip(), ""


# -- incremental detokenisation ------------------------------------------------------------------------
class _Detok:
    """Streams text from ids without decoding the whole text at each step.

    Decodes a short window (``prefix``..end) and emits what extends past ``read``; holds back text
    that ends in an incomplete UTF-8 character. Joined deltas equal decode(all ids).
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode = decode
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def push(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        prefix_text = self.decode(self.ids[self.prefix : self.read])
        new_text = self.decode(self.ids[self.prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        prefix_text = self.decode(self.ids[self.prefix : self.read])
        new_text = self.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return new_text[len(prefix_text) :]


# -- the loop -------------------------------------------------------------------------------------------
def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a generation: the tokenizer's eos and the model's generation_config eos."""
    eos: set[int] = set()
    for src in (getattr(tokenizer, "eos_token_id", None),
                getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(src, int):
            eos.add(src)
        elif src:
            eos.update(int(x) for x in src)
    return sorted(eos)


def model_keeps_last(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (then only the last position's logits are computed)."""
    params = inspect.signature(model.forward).parameters
    return "logits_to_keep" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class RowDecoder:
    """One generation as a coroutine (``steps``), with its ids and counters, but no model and no cache.

    ``steps`` yields ``Feed``/``Crop`` requests and events; a driver owns the model and the KV cache and
    answers the requests: ``drive`` at batch 1 (``generate_with_tools``), ``batched.BatchDecoder`` with
    many rows in one forward pass. Every decision (top-k, threshold, names, calls, stops) is made here
    only, so both drivers give the same text and calls. Not shared between threads.
    """

    def __init__(self, tokenizer: Any, tools: Mapping[str, Any], cfg: InferenceConfig, eos_ids: list[int]):
        self.tok, self.cfg = tokenizer, cfg
        self.tools = {n: t for n, t in tools.items() if cfg.tools is None or n in cfg.tools}
        self.stats = GenerationStats()
        self.api_ids: list[int] = tokenizer.encode(API_START, add_special_tokens=False)
        self.api_id = self.api_ids[0]
        self.eos_ids = eos_ids
        self.cache_len = 0  # tokens in the driver's KV cache for this generation
        self.name_trie = self._name_sequences(tools)
        self.rng = None
        if cfg.temperature > 0:
            self.rng = torch.Generator(device="cpu")
            self.rng.manual_seed(cfg.seed if cfg.seed is not None else int(time.time_ns() % (2**31)))

    def can_crop(self) -> bool:
        """Whether the driver's cache can drop its last tokens (a declined call's lookahead is cropped)."""
        return True

    def fed(self, ids: list[int]) -> Generator[Feed, Any, torch.Tensor]:
        """Ask the driver to feed ``ids``; returns the next-token logits (fp32)."""
        self.cache_len += len(ids)
        self.stats.forward_passes += 1
        self.stats.tokens_fed += len(ids)
        return (yield Feed(list(ids)))

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _name_sequences(self, tools: Mapping[str, Any]) -> list[tuple[str, list[int], bool]]:
        """(name, token ids of "Name(" after " [", enabled) for every known tool: the name trie's paths."""
        if not self.cfg.constrain_names:
            return []
        from toolformer_app.tools import tool_names

        out = []
        for name in dict.fromkeys([*tool_names(), *tools]):
            try:
                ids = self.tok.encode(API_START + name + "(", add_special_tokens=False)
                # canonical tokens after " [" (a tokenizer that merges " [" with the name: the name alone)
                ids = ids[len(self.api_ids):] if ids[: len(self.api_ids)] == self.api_ids else \
                    self.tok.encode(name + "(", add_special_tokens=False)
            except Exception:  # a name this tokenizer cannot spell is a name the model cannot write
                continue
            if ids:
                out.append((name, ids, name in self.tools))
        return out

    def read_name(self, logits: torch.Tensor) -> Generator[Feed, Any, tuple[str, list[int], torch.Tensor]]:
        """After " [" has been fed (``logits``: the next-token logits), the greedy path through the name trie.

        Returns (name, its ids, the logits after the last id fed); the caller feeds the rest (at least the last
        id; ``cache_len`` says how many were fed). The trie holds the enabled names. With ``decline_disabled``
        each name token is the model's own greedy choice, and a token that spells no enabled name gives the
        name "" (a disabled tool, or something else: the caller declines the call); without it, the best
        enabled continuation is forced. Once the tokens chosen start one known name only (enabled or not:
        " [Calcul" is the Calculator, " [Cal" could be the Calendar), the model has chosen that tool and the
        rest of its name is written without a forward pass per token (two fewer for the Calculator).
        """
        decline = self.cfg.decline_disabled and self.can_crop()  # a declined call is cropped away
        paths = [(n, ids) for n, ids, on in self.name_trie if on]
        known = [ids for _, ids, _ in self.name_trie]
        chosen: list[int] = []
        while True:
            live = [(n, ids) for n, ids in paths if ids[: len(chosen)] == chosen]
            done = next((n for n, ids in live if len(ids) == len(chosen)), None)
            if done is not None:
                return done, chosen, logits
            if chosen and len(live) == 1 and sum(ids[: len(chosen)] == chosen for ids in known) == 1:
                return live[0][0], list(live[0][1]), logits
            options = sorted({ids[len(chosen)] for _, ids in live})
            if decline:  # the model's own next token must spell an enabled name, else no call here
                tok = int(logits.argmax())
                if tok not in options:
                    return "", chosen, logits
            else:
                tok = options[int(logits[options].argmax())]
            chosen.append(tok)
            if any(ids == chosen for _, ids in live):  # the last id is fed later, with the call's text
                continue
            logits = yield from self.fed([tok])

    def encode_prompt(self, prompt: str) -> list[int]:
        if self.cfg.chat_template and getattr(self.tok, "chat_template", None):
            ids = self.tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                               tokenize=True, return_dict=False)
            return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)
        return self.tok.encode(prompt)  # special tokens as the model expects (Gemma's <bos>)

    def call_gate(self) -> float | None:
        """The least p(" [") that may start a call under thresholds: the lowest of the per-tool thresholds and
        the global one (a tool's own threshold is checked once its name is read); None: top-k decides."""
        cfg = self.cfg
        values = [*(cfg.tool_thresholds or {}).values(), *([] if cfg.call_threshold is None else [cfg.call_threshold])]
        return min(values) if values else None

    @torch.inference_mode()
    def choose(self, logits: torch.Tensor, may_call: bool, in_call: bool) -> int:
        """The next token: " [" when a call may start and it is in the top k (or p(" [") reaches the threshold);
        else greedy/sampled. ``self.p_call`` keeps p(" [") of the last choice where a call could start."""
        cfg = self.cfg
        if cfg.ignore_eos and self.eos_ids:
            logits[self.eos_ids] = float("-inf")
        if may_call and not in_call:
            gate = self.call_gate()
            if gate is not None:
                self.p_call = float(torch.softmax(logits, -1)[self.api_id])
                if self.p_call >= gate:
                    return self.api_id
                logits[self.api_id] = float("-inf")  # under the threshold: " [" is not written as text either
            # rank of " [" = how many tokens beat it; ties count for " ["
            elif int((logits > logits[self.api_id]).sum()) < cfg.top_k_call:
                return self.api_id
        else:
            logits[self.api_id] = float("-inf")
        if cfg.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / cfg.temperature, dim=-1)
        if cfg.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            cut = sorted_p.cumsum(0) - sorted_p > cfg.top_p  # keep the smallest set reaching top_p
            sorted_p[cut] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
        return int(torch.multinomial(probs.cpu(), 1, generator=self.rng))

    def declines(self, name: str) -> bool:
        """Whether a call whose name was read as ``name`` is not written: a disabled tool (or no name), or
        p(" [") under this tool's own threshold."""
        if name not in self.tools:
            return True
        own = (self.cfg.tool_thresholds or {}).get(name, self.cfg.call_threshold)
        return self.call_gate() is not None and own is not None and self.p_call < own

    # -- one generation: the state of ``steps`` and its parts ---------------------------------------------------
    def _start(self, prompt: str) -> None:
        self.t0 = time.perf_counter()
        self.prompt = prompt
        self.prompt_ids = self.encode_prompt(prompt)
        if not self.prompt_ids:  # an empty prompt: start from a special token rather than fail
            start = getattr(self.tok, "bos_token_id", None)
            self.prompt_ids = [start if start is not None else self.eos_ids[0]]
        self.stats.prompt_tokens = len(self.prompt_ids)
        self.out_ids: list[int] = []  # generated ids, injected ones included
        # Tokens are fed lazily, when the next logits are needed: the arrow token and the tool's
        # result go in one forward pass, and the last token chosen is never fed for nothing.
        self.unfed: list[int] = list(self.prompt_ids)
        self.detok = _Detok(self.decode)
        self.calls: list[CallExecuted] = []
        self.emitted: list[str] = []
        self.held = ""  # text held back while it could still be the start of a stop string
        self.hold = max((len(s) for s in self.cfg.stop), default=1) - 1
        self.stop_reason = "max_new_tokens"
        self.in_call = False
        self.call_start = 0  # index in out_ids of the call's " ["
        self.call_ids: list[int] = []
        self.p_call = 1.0

    def _emit(self, text: str, in_call_text: bool) -> Iterator[TextChunk]:
        if in_call_text or not self.cfg.stop:  # calls hold no newline: stop strings are not looked for
            chunks = [(self.held, False), (text, in_call_text)]
            self.held = ""
        else:
            buf = self.held + text
            hits = [i for i in (buf.find(s) for s in self.cfg.stop) if i >= 0]
            if hits:
                self.stop_reason = "stop"
                chunks, self.held = [(buf[: min(hits)], False)], ""
            else:
                cut = len(buf) - self.hold
                chunks, self.held = [(buf[:cut], False)], buf[cut:]
        for chunk, flag in chunks:
            if chunk:
                self.emitted.append(chunk)
                yield TextChunk(chunk, flag)

    def _feed(self, ids: list[int], in_call_text: bool, injected: bool = False) -> Iterator[TextChunk]:
        self.out_ids.extend(ids)
        self.unfed.extend(ids)
        if injected:
            self.stats.tokens_injected += len(ids)
        yield from self._emit(self.detok.push(ids), in_call_text)

    def _finish_call(self, tool: str, inp: str, output: str | None, reason: str, duration: float,
                     input_by: str = "model") -> CallExecuted:
        self.in_call = False
        start = len(self.decode(self.out_ids[: self.call_start]))  # two short decodes per call, for exact offsets
        full = self.decode(self.out_ids)
        call = CallExecuted(len(self.calls), tool, inp, output, output is not None, reason, duration, full[start:],
                            start, len(full), self.call_start, len(self.out_ids), input_by)
        self.calls.append(call)
        return call

    def _close_malformed(self, call_text: str, reason: str) -> Iterator[Event]:
        yield from self._feed(self.tok.encode(API_END, add_special_tokens=False), True, injected=True)
        m = re.match(r"\s*\[([A-Za-z_]\w*)\(?(.*)", call_text)
        yield self._finish_call(m.group(1) if m else "", m.group(2) if m else call_text.strip(" ["), None, reason, 0.0)

    def _run_call(self, tool: str, inp: str, head: str, input_by: str = "model") -> Steps:
        """Run the tool, then feed ``head`` (the rest of " -> ", or the decoder's input and arrow) with " r]"."""
        t1 = time.perf_counter()
        output, reason = yield RunTool(functools.partial(execute_tool, self.tools, tool, inp))
        duration = time.perf_counter() - t1
        self.stats.tool_time_s += duration
        # " r]" joins the cache with the arrow token in the next single forward pass
        yield from self._feed(self.tok.encode(head + (output or "") + API_END, add_special_tokens=False), True,
                              injected=True)
        yield self._finish_call(tool, inp, output, reason, duration, input_by)

    def _start_call(self, logits: torch.Tensor) -> Steps:
        """" [" was chosen: read the name (or decline the call there, writing the next best token instead), then
        open the call; with a clause-input tool, the decoder writes its input and runs it at once."""
        stats = self.stats
        name_ids: list[int] = []
        name = ""
        if not self.unfed and any(on for _, _, on in self.name_trie):
            before_call = self.cache_len
            first = yield from self.fed(self.api_ids)
            name, name_ids, after = yield from self.read_name(first)
            if self.declines(name):  # a disabled tool, or under its threshold: no call here
                stats.lookahead_tokens += self.cache_len - before_call
                stats.calls_declined += 1
                if (yield Crop(self.cache_len - before_call)):
                    self.cache_len = before_call
                else:  # a cache that cannot roll back (a full sliding window): rebuild
                    self.cache_len = 0
                    self.unfed[:0] = self.prompt_ids + self.out_ids
                tok = self.choose(logits, False, False)  # " [" masked: the next best token
                if tok in self.eos_ids:
                    self.stop_reason = "eos"
                    return
                yield from self._feed([tok], False)
                return
            name_fed = self.cache_len - before_call - len(self.api_ids)
        yield from self._emit(self.detok.flush(), False)
        if self.stop_reason == "stop":
            return
        self.call_start, self.call_ids, self.in_call = len(self.out_ids), list(self.api_ids) + name_ids, True
        yield CallStarted(len(self.calls), len(self.decode(self.out_ids)))
        if not name_ids:
            yield from self._feed(self.api_ids, True)
            return
        stats.tokens_generated += len(name_ids)
        yield from self._feed(self.api_ids + name_ids, True)
        del self.unfed[: len(self.api_ids) + name_fed]  # fed while reading the name
        if name in self.cfg.clause_inputs:
            clause = clause_before(self.prompt + self.decode(self.out_ids[: self.call_start]),
                                   len(self.prompt) + len(self.decode(self.out_ids[: self.call_start])))
            yield from self._run_call(name, clause, clause + ") -> ", input_by="decoder")

    def _call_token(self, tok: int) -> Steps:
        """A token chosen inside a call: look at the call's own text (a few tokens) with it appended."""
        before = self.decode(self.call_ids)
        text = self.decode(self.call_ids + [tok])
        if tok in self.eos_ids or "\n" in text[len(before):]:
            yield from self._close_malformed(before, "newline or end of text inside the call")
            return
        bracket = text.index("[")
        body = text[bracket:]
        arrow = _ARROW.search(body)
        if arrow and _NAME_OPEN.match(body):
            head_end = bracket + arrow.end()
            opened = find_open_call(text[:head_end])
            if opened is None:  # e.g. "]" inside the input: not a parsable call
                yield from self._close_malformed(before, "malformed call")
                return
            tool, inp = opened
            if text[head_end:].strip():
                # the token runs past "->" (a merge): drop it, re-tokenise its text up to the arrow
                head = text[len(before): head_end] + " "
            else:
                yield from self._feed([tok], True)
                head = "" if text.endswith(" ") else " "
            yield from self._run_call(tool, inp, head)
            return
        if API_END in body:  # closed before "->": e(c), the model asked for no result
            yield from self._feed([tok], True)
            m = re.match(r"\[([A-Za-z_]\w*)\((.*)\)\s*\]", body)
            reason = "closed without '->'" if m else "not a tool call"
            yield self._finish_call(m.group(1) if m else "", m.group(2) if m else body.strip("[]"), None, reason, 0.0)
            return
        if not _NAME_PREFIX.match(body):
            yield from self._close_malformed(before, "no 'Name(' after '['")
            return
        if len(self.call_ids) >= self.cfg.max_call_tokens:
            yield from self._close_malformed(before, f"call longer than {self.cfg.max_call_tokens} tokens")
            return
        self.call_ids.append(tok)
        yield from self._feed([tok], True)

    def steps(self, prompt: str) -> Steps:
        """The generation of ``prompt``: yields requests (``Feed``, ``Crop``) and events, the last one ``Done``."""
        cfg, stats = self.cfg, self.stats
        self._start(prompt)
        logits = torch.empty(0)
        while stats.tokens_generated < cfg.max_new_tokens and self.stop_reason != "stop":
            if self.unfed:
                logits = yield from self.fed(self.unfed)
                self.unfed.clear()
            may_call = not cfg.disabled and cfg.top_k_call > 0 and len(self.calls) < cfg.max_calls
            tok = self.choose(logits, may_call, self.in_call)
            stats.tokens_generated += 1
            if self.in_call:
                yield from self._call_token(tok)
            elif tok in self.eos_ids:
                self.stop_reason = "eos"
                break
            elif tok == self.api_id and may_call:
                yield from self._start_call(logits)
                if self.stop_reason == "eos":
                    break
            else:
                yield from self._feed([tok], False)

        if self.in_call:  # out of tokens inside a call: close it so the text stays well formed
            yield from self._close_malformed(self.decode(self.call_ids), "max_new_tokens reached inside the call")
        if self.stop_reason != "stop":
            yield from self._emit(self.detok.flush(), False)
            if self.held:
                self.emitted.append(self.held)
                yield TextChunk(self.held)
        stats.prefix_tokens_reencoded = (stats.tokens_fed - stats.lookahead_tokens - stats.prompt_tokens
                                         - (len(self.out_ids) - len(self.unfed)))
        stats.elapsed_s = time.perf_counter() - self.t0
        yield Done("".join(self.emitted), self.calls, self.stop_reason, stats, self.out_ids)


class _Session(RowDecoder):
    """A generation at batch 1, with the model's own KV cache (``generate_with_tools``)."""

    def __init__(self, model: Any, tokenizer: Any, tools: Mapping[str, Any], cfg: InferenceConfig):
        super().__init__(tokenizer, tools, cfg, eos_token_ids(model, tokenizer))
        self.model = model
        self.cache: Any = None

    def can_crop(self) -> bool:
        return hasattr(self.cache, "crop")

    def run(self, prompt: str) -> Iterator[Event]:
        return drive(self.model, self.steps(prompt), self)


def drive(model: Any, steps: Steps, holder: Any = None) -> Iterator[Event]:
    """Run a decoding coroutine at batch 1: answer its requests with ``model`` and its own KV cache, and
    pass its events on. ``holder`` (optional) gets the cache as ``holder.cache`` after each request."""
    device = getattr(model, "device", None) or next(model.parameters()).device
    kwargs: dict[str, Any] = {"logits_to_keep": 1} if model_keeps_last(model) else {}
    cache: Any = None
    reply: Any = None
    while True:
        try:
            item = steps.send(reply)
        except StopIteration:
            return
        reply = None
        if isinstance(item, Feed):
            with torch.inference_mode():
                out = model(input_ids=torch.tensor([item.ids], device=device), cache=cache, use_cache=True,
                            **kwargs)
            cache = out.cache
            reply = out.logits[0, -1].float()
        elif isinstance(item, RunTool):
            reply = item.fn()
        elif isinstance(item, Crop):
            try:  # transformers' crop takes the (negative) number of tokens to remove
                cache.crop(-item.n)
                reply = True
            except Exception:  # a cache that cannot roll back: start again without one
                cache, reply = None, False
        else:
            yield item
            continue
        if holder is not None:
            holder.cache = cache


def generate_with_tools(
    model: Any,
    tokenizer: Any,
    prompt: str,
    tools: Mapping[str, Any] | None = None,
    config: InferenceConfig | None = None,
) -> Iterator[Event]:
    """Stream events: TextChunk, CallStarted, CallExecuted, and a final Done.

    ``tools`` maps a name to a ``Tool`` (its ``run`` is used) or to a plain callable (the input is
    passed as in ``calls.invoke_tools``).
    """
    return _Session(model, tokenizer, tools or {}, config or InferenceConfig()).run(prompt)


def run_with_tools(
    model: Any,
    tokenizer: Any,
    prompt: str,
    tools: Mapping[str, Any] | None = None,
    config: InferenceConfig | None = None,
) -> Result:
    """Run ``generate_with_tools`` to the end; the text holds calls as " [Tool(input) -> result]"."""
    events = list(generate_with_tools(model, tokenizer, prompt, tools, config))
    done = events[-1]
    assert isinstance(done, Done)
    return Result(done.text, done.calls, events, done.stop_reason, done.stats, done.token_ids)
