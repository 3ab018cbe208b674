"""`chat`: generate with tools from the command line, calls highlighted, then the list of calls."""

from __future__ import annotations

import argparse
import codecs
import json
import sys
from typing import Any

_EPILOG = """examples:
  python -m toolformer_app chat "The farm has 48 cows and bought 17 more, so it now has"
  python -m toolformer_app chat --tools Calculator --top-k 3 --max-new-tokens 32 "..."
  python -m toolformer_app chat --disabled "..."          # Toolformer (disabled): p(" [") = 0
"""

_CALL, _BAD, _RESET = "\033[1;36m", "\033[1;33m", "\033[0m"


def load_tools(names: str | None) -> dict[str, Any]:
    """{name: Tool} for a comma-separated list; a tool whose module is missing or fails is skipped."""
    from toolformer_app.tools import get_tool, tool_names

    wanted = [n.strip() for n in (names.split(",") if names else tool_names()) if n.strip()]
    tools: dict[str, Any] = {}
    for name in wanted:
        try:
            tool = get_tool(name)
        except KeyError:
            raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(tool_names())}") from None
        except Exception as exc:  # a tool not written yet, or missing its data: chat without it
            print(f"note: tool {name} unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        tools[tool.name] = tool
    return tools


def register(subparsers: argparse._SubParsersAction) -> None:
    from toolformer_app.decoding import InferenceConfig  # the paper's k = 10 is its default

    p = subparsers.add_parser(
        "chat", help="generate with tool calls (pause at '->', run the tool, resume)",
        description="Greedy decoding that starts a call whenever ' [' is among the top-k tokens (paper, 4.2).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", help="raw text prompt (use - to read stdin)")
    p.add_argument("--model", default=None, help="preset, hub id or directory (default: the app's default model)")
    p.add_argument("--tools", default=None, help="comma-separated tool names (default: all five, and those of --tools-from)")
    p.add_argument("--disabled", action="store_true", help="never call a tool: p(' [') = 0")
    p.add_argument("--top-k", type=int, default=InferenceConfig.top_k_call,
                   help="start a call when ' [' is in the top k (0: never; default %(default)s, the paper's)")
    p.add_argument("--max-calls", type=int, default=1, help="calls per input (paper: 1)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=[], help="stop string, escapes allowed (repeatable), e.g. --stop '\\n\\n'")
    p.add_argument("--chat-template", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--style", choices=("raw", "paper", "plain", "chat"), default="raw",
                   help="the Chat tab's prompt styles: paper (the paper's zero-shot formats, stops at the end of "
                        "the answer), plain, chat (the chat template); raw: the prompt as given (default)")
    p.add_argument("--call-threshold", default=None,
                   help="call when p(' [') reaches this instead of top-k; 'card': the model card's calibrated value "
                   "(with its per-tool thresholds, as Chat)")
    p.add_argument("--clause-inputs", default="card",
                   help="tools whose input the decoder writes (the clause so far), e.g. QA; 'card' (default): the "
                   "model card's setting; 'none': the model writes every input (the paper)")
    p.add_argument("--free-names", action="store_true",
                   help="decode tool names freely (a disabled tool can be written) instead of from the name trie")
    p.add_argument("--no-decline", action="store_true",
                   help="with constrained names, force an enabled tool even when the model prefers a disabled one")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def _bad_setting(args: argparse.Namespace, threshold: float | None) -> str | None:
    """One line naming the first setting out of range, or None."""
    if args.top_k < 0:
        return f"--top-k must be 0 or more, not {args.top_k}"
    if args.max_new_tokens < 1:
        return f"--max-new-tokens must be at least 1, not {args.max_new_tokens}"
    if args.max_calls < 0:
        return f"--max-calls must be 0 or more, not {args.max_calls}"
    if threshold is not None and not 0 <= threshold <= 1:  # NaN fails too
        return f"--call-threshold is a probability: between 0 and 1, not {threshold:g}"
    if not args.temperature >= 0:
        return f"--temperature must be 0 or more, not {args.temperature:g}"
    if not 0 < args.top_p <= 1:
        return f"--top-p must be in (0, 1], not {args.top_p:g}"
    return None


def run(args: argparse.Namespace) -> int:
    from toolformer_app import models
    from toolformer_app.decoding import (
        CallExecuted,
        Done,
        InferenceConfig,
        TextChunk,
        answer_stops,
        format_prompt,
        generate_with_tools,
    )
    from toolformer_app.files import clean_text, is_blank

    prompt = clean_text(sys.stdin.read() if args.prompt == "-" else args.prompt)
    if is_blank(prompt):  # as the UI: nothing to continue from (control characters alone included)
        print("error: the prompt is empty", file=sys.stderr)
        return 2
    stops = tuple(codecs.decode(x, "unicode_escape") for x in args.stop)
    if args.style != "raw":  # exactly what the Chat tab sends for this style
        prompt = format_prompt(prompt, args.style)
        stops = stops or answer_stops(args.style)
    threshold = None
    card = models.card_inference(args.model or models.model_id())
    if args.call_threshold == "card":
        threshold = card["call_threshold"]
    elif args.call_threshold is not None:
        try:
            threshold = float(args.call_threshold)
        except ValueError:
            print(f"error: --call-threshold must be a number or 'card', got {args.call_threshold!r}", file=sys.stderr)
            return 2
    problem = _bad_setting(args, threshold)
    if problem:  # before the model loads: as the Chat tab, which refuses these values
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        model, tok = models.load(args.model, device=args.device)
    except models.ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tools = load_tools(args.tools)
    cfg = InferenceConfig(
        max_new_tokens=args.max_new_tokens, top_k_call=args.top_k, max_calls=args.max_calls,
        disabled=args.disabled, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
        stop=stops, chat_template=args.chat_template or args.style == "chat", call_threshold=threshold,
        constrain_names=not args.free_names, decline_disabled=not args.no_decline,
        tool_thresholds=card["tool_thresholds"] if args.call_threshold == "card" else None,
        clause_inputs=card["clause_inputs"] if args.clause_inputs == "card" else
        tuple(t.strip() for t in args.clause_inputs.split(",") if t.strip() and args.clause_inputs != "none"),
    )
    color = sys.stdout.isatty() and not args.json
    done: Done | None = None
    in_call = False
    for event in generate_with_tools(model, tok, prompt, tools, cfg):
        if isinstance(event, TextChunk) and not args.json:
            if color and event.in_call != in_call:
                sys.stdout.write(_CALL if event.in_call else _RESET)
                in_call = event.in_call
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, CallExecuted) and color and in_call:
            sys.stdout.write(_RESET)
            in_call = False
        elif isinstance(event, Done):
            done = event
    assert done is not None
    if args.json:
        out = done.to_dict()
        out.pop("token_ids", None)
        print(json.dumps({"prompt": prompt, **out}, ensure_ascii=False))
        return 0
    if color and in_call:
        sys.stdout.write(_RESET)
    print()
    s = done.stats
    print(f"\n-- {len(done.calls)} call(s); {s.tokens_generated} tokens in {s.elapsed_s:.2f} s "
          f"({s.tokens_per_s:.1f} tok/s); stop: {done.stop_reason}")
    for c in done.calls:
        mark = (_CALL if c.ok else _BAD) if color else ""
        status = f"-> {c.output!r}" if c.ok else f"no result ({c.reason})"
        by = " (input written by the decoder)" if c.input_by == "decoder" else ""
        print(f"  {mark}{c.tool or '?'}({c.input}){_RESET if color else ''}{by} {status} [{c.duration_s * 1000:.1f} ms]")
    return 0
