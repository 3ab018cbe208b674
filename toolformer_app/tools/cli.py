"""CLI commands for the tools: `tool NAME INPUT` runs one executor, `invoke TEXT` executes the calls in a text."""

from __future__ import annotations

import argparse
import datetime
import sys

from toolformer_app.tools import TOOL_NAMES, Tool, get_tool

_TOOL_EPILOG = """examples:
  python -m toolformer_app tool Calculator "400 / 1400"        # 0.29
  python -m toolformer_app tool Calendar --date 2023-01-30      # Today is Monday, January 30, 2023.
  python -m toolformer_app tool WikiSearch "Eiffel Tower"
  python -m toolformer_app tool QA "Who designed the Eiffel Tower?"
  python -m toolformer_app tool MT "Le chat dort sur le canapé."
"""

_INVOKE_EPILOG = """example:
  python -m toolformer_app invoke "Out of 1400 people, 400 [Calculator(400 / 1400)] 29% passed."
  -> Out of 1400 people, 400 [Calculator(400 / 1400) -> 0.29] 29% passed.
"""


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {value!r}") from None


def _tool_options(args: argparse.Namespace, name: str) -> dict:
    """Constructor options for tool ``name`` from the shared command-line flags."""
    key = name.strip().lower()
    opts: dict = {}
    if key == "calendar" and getattr(args, "date", None):
        day = args.date
        opts["clock"] = lambda: day
    if key in ("wikisearch", "qa") and getattr(args, "corpus", None):
        opts["corpus_path"] = args.corpus
    if key in ("qa", "mt") and getattr(args, "model", None):
        opts["model_name"] = args.model
    if key == "mt" and getattr(args, "mt_model", None):
        opts["seq2seq_model"] = args.mt_model
    return opts


def _add_shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=_date, metavar="YYYY-MM-DD",
                        help="Calendar: the date to report instead of today")
    parser.add_argument("--corpus", metavar="PATH",
                        help="WikiSearch/QA: a .jsonl (field \"text\") or .txt (one passage per line) corpus "
                             "instead of the embedded Wikipedia extracts")
    parser.add_argument("--model", metavar="NAME",
                        help="QA/MT: the causal LM (preset, hub id or directory); default: the app's default model")
    parser.add_argument("--mt-model", metavar="NAME",
                        help="MT: a seq2seq translation model such as facebook/nllb-200-distilled-600M "
                             "(default: $TOOLFORMER_MT_MODEL, else few-shot with the LM)")


def cmd_tool(args: argparse.Namespace) -> int:
    try:
        tool: Tool = get_tool(args.name, **_tool_options(args, args.name))
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    result = tool.run(args.input)
    if not result.ok:
        print(f"{tool.name}: no result: {result.reason or 'unknown reason'}", file=sys.stderr)
        return 1
    print(result.output)
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    from toolformer_app.calls import invoke_tools

    text = sys.stdin.read() if args.text == "-" else args.text
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    try:
        registry = {}
        for n in names:
            tool = get_tool(n, **_tool_options(args, n))
            registry[tool.name] = tool
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    try:
        out = invoke_tools(registry, text, policy=args.policy)
    except Exception as exc:  # invoke_tools handles tool errors itself; this is a last resort
        print(f"invoke failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tool` and `invoke` commands."""
    p = subparsers.add_parser(
        "tool",
        help="run one tool on an input and print its result",
        description="Run one tool's executor on INPUT and print the result. When the tool gives no "
                    "result (e.g. an invalid expression) the reason goes to stderr and the exit code is 1.",
        epilog=_TOOL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help=f"tool name: {', '.join(TOOL_NAMES)} (case-insensitive), or one of --tools-from FILE")
    p.add_argument("input", nargs="?", default="", metavar="INPUT",
                   help="the call's input, e.g. \"400 / 1400\" (Calendar takes none)")
    _add_shared(p)
    p.set_defaults(func=cmd_tool)

    p = subparsers.add_parser(
        "invoke",
        help="execute the API calls in a text and print it with their results",
        description="Find every call such as [Calculator(400 / 1400)] in TEXT, run its tool and print the "
                    "text with the results inserted ([Calculator(400 / 1400) -> 0.29]). Calls that already "
                    "hold a result, and calls to unknown tools, are left unchanged.",
        epilog=_INVOKE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("text", metavar="TEXT", help="the text with calls; '-' reads it from stdin")
    p.add_argument("--policy", choices=("leave", "drop", "error"), default="leave",
                   help="what to do with a call whose tool fails: leave it without a result (default), "
                        "drop it from the text, or insert 'Error: <reason>' as its result")
    p.add_argument("--tools", default=",".join(TOOL_NAMES), metavar="NAMES",
                   help=f"comma-separated tools to enable (default: {','.join(TOOL_NAMES)})")
    _add_shared(p)
    p.set_defaults(func=cmd_invoke)
