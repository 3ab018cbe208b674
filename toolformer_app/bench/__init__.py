"""`bench KIND`: speed measurements. Each kind is a module here with add_arguments(parser) and run(args) -> int.

Modules are imported when the parser is built, so they keep heavy imports (torch, models) inside run().
A kind whose module does not exist yet is simply not offered.
"""

from __future__ import annotations

import argparse
import importlib

KINDS: dict[str, str] = {
    "pipeline": "toolformer_app.bench.pipeline",
    "inference": "toolformer_app.bench.inference",
    "tools": "toolformer_app.bench.tools",
    "chat": "toolformer_app.bench.chat",
    "eval": "toolformer_app.bench.eval",
    "finetune": "toolformer_app.bench.finetune",
    "reader": "toolformer_app.bench.reader",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks (pipeline, inference, tools, chat, eval, finetune, reader)",
                                   description="Speed benchmarks; each prints a JSON line with --json.")
    kinds = parser.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    for kind, module_name in KINDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not written yet
                continue
            raise
        doc = (module.__doc__ or kind).strip().splitlines()[0]
        sub = kinds.add_parser(kind, help=doc, description=module.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
