"""python -m toolformer_app <command>. Each package registers its own commands; all logic lives there."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from toolformer_app import config

# Each module has register(subparsers): it adds its commands, each with set_defaults(func=...).
COMMAND_MODULES = (
    "toolformer_app.tools.cli",       # tool, invoke
    "toolformer_app.pipeline.cli",    # generate
    "toolformer_app.pipeline.report", # cstar (C* quality, runs compared)
    "toolformer_app.training.cli",    # finetune, jobs
    "toolformer_app.decoding.cli",   # chat
    "toolformer_app.evaluation.cli",  # eval
    "toolformer_app.evaluation.calibrate",  # calibrate (Chat's call threshold)
    "toolformer_app.bench",           # bench pipeline|inference
    "toolformer_app.recipe",          # recipe (rebuild the shipped model)
    "toolformer_app.models.model_card",  # card (a model folder's README.md from its stored results)
)

# Commands that take --tools-from FILE (the user's own tools, registered by name before the command runs).
TOOL_COMMANDS = ("generate", "chat", "eval", "tool", "invoke")


def build_parser() -> argparse.ArgumentParser:
    # `toolformer` is the console script that `pip install` makes; it is the same as `python -m toolformer_app`.
    prog = "toolformer" if Path(sys.argv[0]).name == "toolformer" else "python -m toolformer_app"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Toolformer Studio: annotate text with API calls, filter, finetune, chat and evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that area is not built yet
                continue
            raise
        module.register(sub)
    for command in TOOL_COMMANDS:
        if command in sub.choices:
            sub.choices[command].add_argument(
                "--tools-from", action="append", default=[], metavar="FILE",
                help="a Python file defining your own tool(s) (a Tool subclass, or a TOOL function with a "
                     "PROMPT in the toolformer-pytorch form); repeatable. Its code runs: load only files you trust.")
    return parser


def _register_tool_files(args: argparse.Namespace) -> bool:
    """Load the --tools-from files; False (after a one-line error naming file and line) if one is broken."""
    files = getattr(args, "tools_from", None)
    if not files:
        return True
    from toolformer_app.tools.loader import ToolFileError, register_tool_files

    try:
        register_tool_files(files)
    except ToolFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    config.setup_offline_env()
    args = build_parser().parse_args(argv)
    if not _register_tool_files(args):
        return 2
    try:
        config.check_settings()
    except config.SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` closed stdout: stop quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return 141
