"""The package's import graph: no cycle, no import running back up the layers, no private name used
across modules. Read from the source with ``ast`` (nothing is imported), lazy imports inside functions
included: a lazy import that runs upward is still a dependency.

    python tests/unit/test_import_layers.py          # the layers, then the graph between packages (DOT)
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "toolformer_app"

# From the top down. A module may import from its own layer's package and from any lower layer, never
# from a higher one, nor from another package of its own layer (packages of one layer are independent).
# The longest entry that is the module or one of its parent packages places it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # entry points (the package itself, the app, the CLI commands, scripts): they may import one another
    ("toolformer_app", "toolformer_app.__main__", "toolformer_app.cli", "toolformer_app.ui", "toolformer_app.bench",
     "toolformer_app.recipe", "toolformer_app.decoding.cli", "toolformer_app.evaluation.cli",
     "toolformer_app.training.cli", "toolformer_app.pipeline.cli", "toolformer_app.pipeline.report",
     "toolformer_app.tools.cli"),
    ("toolformer_app.compat",),  # the toolformer-pytorch compatible API over the pipeline, training and decoding
    # the suites and their items, scoring, predictions, the runner, perplexity, the report, calibration: read
    # the pipeline's sources, decode many rows at once
    ("toolformer_app.evaluation",),
    # the finetune (loading with LoRA, checks, the loop, checkpoints) and its jobs; Chat's decoding server
    ("toolformer_app.training", "toolformer_app.decoding.server"),
    ("toolformer_app.decoding.batch",),  # many rows decoded together with tools
    ("toolformer_app.decoding.prefix_cache",),  # shared prompt prefixes and their KV
    ("toolformer_app.decoding",),  # decoding with tools
    ("toolformer_app.pipeline",),  # corpus -> positions -> sampling -> execution -> scoring -> filtering -> C*
    ("toolformer_app.tools",),  # the five tools and the user's
    ("toolformer_app.models",),  # loading models, their forward pass
    ("toolformer_app.calls", "toolformer_app.files", "toolformer_app.wheelfiles",
     "toolformer_app.decoding.threads"),  # call format, files, wheels, a thread per torch job
    ("toolformer_app.config",),  # settings
)
ROOT = "toolformer_app"  # the package's __init__: placed by exact name only


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name


def imports(module: str, path: Path, mods: dict[str, Path]) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, name imported from it or None, line) for every import of the package's own code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE.name:
                    yield _resolve(alias.name, mods), None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts) + (f".{base}" if base else "")
            if base.split(".")[0] != PACKAGE.name:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in mods:  # a submodule
                    yield full, None, node.lineno
                else:
                    yield _resolve(base, mods), alias.name, node.lineno


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {t for t, _, _ in imports(m, p, mods) if t != m} for m, p in mods.items()}


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the LAYERS entry that places it)."""
    best = None
    for i, entries in enumerate(LAYERS):
        for entry in entries:
            inside = module == entry or (entry != ROOT and module.startswith(entry + "."))
            if inside and (best is None or len(entry) > len(best[1])):
                best = (i, entry)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _package_init_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    # Importing a submodule runs its package's __init__ first, so an edge into a package's submodule from
    # the package itself is not a cycle through it: drop package -> own submodule edges for the cycle check.
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_the_import_graph_has_no_cycle():
    found = cycles(_package_init_edges(graph()))
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_import_runs_back_up_the_layers():
    upward = []
    for m, targets in graph().items():
        mine, my_entry = layer_of(m)
        for t in targets:
            theirs, their_entry = layer_of(t)
            across = theirs == mine and my_entry != their_entry and mine > 0  # entry points may use each other
            if theirs < mine or across:
                upward.append(f"{m} -> {t}")
    assert upward == [], "imports running up (or across one layer): " + ", ".join(sorted(upward))


def test_no_private_name_is_imported_from_another_module():
    mods = modules()
    found = []
    for m, path in mods.items():
        for target, name, _line in imports(m, path, mods):
            if name and name.startswith("_") and not name.startswith("__") and target != m:
                found.append(f"{path.relative_to(PACKAGE.parent)}: {name} from {target}")
            short = target.rpartition(".")[2]
            # a private module (tools._lm) serves its own package only
            if short.startswith("_") and not short.startswith("__") and target.rpartition(".")[0] != m.rpartition(".")[0]:
                found.append(f"{path.relative_to(PACKAGE.parent)}: private module {target}")
    new = sorted(set(found) - KNOWN_PRIVATE)
    assert new == [], "private names used across modules: " + ", ".join(new)


# Private names of another module still used by code whose owners are changing it now; none may be added.
KNOWN_PRIVATE = frozenset({
    "toolformer_app/bench/reader.py: private module toolformer_app.tools._lm",
    "toolformer_app/recipe.py: jobs._row",
    "toolformer_app/training/cli.py: jobs._row",
    "toolformer_app/training/cli.py: jobs._is_main_rank",
    "toolformer_app/training/cli.py: jobs._normalise",
    # jobs.py re-exports the helpers of the job store and the process runner it was split into
    *(f"toolformer_app/training/jobs.py: {name} from toolformer_app.training.job_process" for name in (
        "_CHILDREN", "_CHILDREN_LOCK", "_fail", "_gone", "_is_main_rank", "_proc_start", "_signal", "_spawn",
        "_tail")),
    *(f"toolformer_app/training/jobs.py: {name} from toolformer_app.training.job_store" for name in (
        "_SCHEMA_READY", "_active_conflict", "_db", "_normalise", "_row", "_rows", "_update")),
    "toolformer_app/training/job_process.py: _row from toolformer_app.training.job_store",
    "toolformer_app/training/job_process.py: _update from toolformer_app.training.job_store",
})


def private_attributes() -> set[str]:
    """``module._name`` read where ``module`` is another module of the package, bound by an import."""
    mods = modules()
    found = set()
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bound.update({a.asname: a.name for a in node.names if a.asname and a.name in mods})
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE.name:
                bound.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names
                              if f"{node.module}.{a.name}" in mods})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__") and bound[node.value.id] != m):
                found.add(f"{path.relative_to(PACKAGE.parent)}: {node.value.id}.{node.attr}")
    return found


def test_no_private_attribute_of_another_module_is_read():
    assert sorted(private_attributes() - KNOWN_PRIVATE) == []


def draw() -> str:
    """The graph between packages (and top-level modules) as DOT, ranked by layer."""
    def node(m: str) -> str:
        return layer_of(m)[1]

    edges = sorted({(node(m), node(t)) for m, ts in graph().items() for t in ts if node(m) != node(t)})
    lines = ["digraph toolformer_app {", "  rankdir=TB;"]
    for i, entries in enumerate(LAYERS):
        lines.append(f"  {{ rank=same; {' '.join(repr(e).replace(chr(39), chr(34)) for e in entries)} }}  // layer {i}")
    lines += [f'  "{a}" -> "{b}";' for a, b in edges]
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    for i, entries in enumerate(LAYERS):
        print(f"layer {i}: {', '.join(entries)}")
    print(draw())
    problems = cycles(_package_init_edges(graph()))
    print(f"cycles: {len(problems)}", *problems, sep="\n")
