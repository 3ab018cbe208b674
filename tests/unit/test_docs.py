"""The README and docs/ stay true: links and anchors resolve, the paths and commands they name exist and parse,
the README's Python runs, the generated tables are what `make docs` writes, and the product's text holds no
absolute path and no word of how the project was built. Offline, a few seconds.

    python -m pytest -q tests/unit/test_docs.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "CHANGELOG.md"]
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~)(.*?)\n(.*?)^\1\s*$", re.S | re.M)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
NEEDS_MODEL = "<!-- docs-test: needs-model -->"


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text with fenced code blocks blanked out (their lines kept, so line numbers still hold)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, start offset) of each fenced block."""
    return [(m.group(2).strip().lower(), m.group(3), m.start()) for m in FENCE.finditer(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(prose(path.read_text(encoding="utf-8"))):
        s = slug(m.group(2))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def _links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(path.read_text(encoding="utf-8")))
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {rel(dest)})")
    assert broken == [], f"{rel(page)}: broken links: " + "; ".join(broken)


# Backticked names that look like repository paths. Paths under the data dir (runs/, DATA_DIR, <data dir>) are
# outputs, not repository files; a glob must match at least one file.
CHECKED_SUFFIXES = (".py", ".md", ".json", ".jsonl", ".sh", ".txt", ".png", ".toml", ".css", ".jinja", ".safetensors")
OUTPUT_PREFIXES = ("runs/", ".venv/", "DATA_DIR", "<", "~", "/", "$")


def _repo_path_candidates(text: str) -> list[str]:
    top = {p.name for p in ROOT.iterdir()}
    out = []
    for m in INLINE_CODE.finditer(prose(text)):
        token = m.group(2).strip()
        if not re.fullmatch(r"[\w.\-/*]+", token) or "/" not in token or token.startswith(OUTPUT_PREFIXES):
            continue
        first = token.split("/")[0]
        if first in top or token.endswith(CHECKED_SUFFIXES):
            out.append(token)
    return out


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_repo_path_in_backticks_exists(page: Path):
    missing = []
    for token in _repo_path_candidates(page.read_text(encoding="utf-8")):
        found = list(ROOT.glob(token)) if "*" in token else [ROOT / token] if (ROOT / token).exists() else []
        if not found:
            missing.append(token)
    assert missing == [], f"{rel(page)} names paths that do not exist: {', '.join(sorted(set(missing)))}"


# CLI lines: `python -m toolformer_app …`, `-m toolformer_app …` (under accelerate launch), `toolformer …`.
CLI = re.compile(r"(?:^|\s)(?:python\s+-m\s+toolformer_app|-m\s+toolformer_app|^toolformer)\s+(.*)$")
ELLIPSIS = ("...", "…")


def _cli_lines(text: str) -> list[str]:
    lines = []
    for lang, body, _ in fenced_blocks(text):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            m = CLI.search(line.strip())
            if m:
                lines.append(m.group(1))
    for m in INLINE_CODE.finditer(prose(text)):
        found = CLI.search(" ".join(m.group(2).split()))
        if found:
            lines.append(found.group(1))
    return lines


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check_options_only(parser: argparse.ArgumentParser, args: list[str]) -> str | None:
    """For a line that elides arguments ("..."): the subcommands exist and every --option is known."""
    rest = list(args)
    while rest and _subparsers(parser):
        choices = _subparsers(parser)
        if rest[0] not in choices:
            return f"unknown command {rest[0]!r}"
        parser = choices[rest.pop(0)]
    unknown = [a.split("=")[0] for a in rest if a.startswith("--") and a.split("=")[0] not in parser._option_string_actions]
    return f"unknown options {unknown}" if unknown else None


def _parse_error(parser: argparse.ArgumentParser, line: str) -> str | None:
    try:
        args = shlex.split(line, comments=True)
    except ValueError as exc:
        return f"cannot split: {exc}"
    if any(a in ELLIPSIS for a in args):
        return _check_options_only(parser, [a for a in args if a not in ELLIPSIS])
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        return None if exc.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


@pytest.fixture(scope="module")
def cli_parser() -> argparse.ArgumentParser:
    from toolformer_app.cli import build_parser

    return build_parser()


@pytest.mark.parametrize("page", [README, *DOCS], ids=rel)
def test_every_cli_line_parses_with_the_real_parser(page: Path, cli_parser: argparse.ArgumentParser):
    bad = []
    for line in _cli_lines(page.read_text(encoding="utf-8")):
        error = _parse_error(cli_parser, line)
        if error:
            bad.append(f"`{line}`: {error}")
    assert bad == [], f"{rel(page)}:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", [README, *DOCS], ids=rel)
def test_every_python_module_named_to_run_exists(page: Path):
    text = page.read_text(encoding="utf-8")
    names = set(re.findall(r"python\s+-m\s+([\w.]+)", text)) - {"pytest", "pip", "venv"}
    missing = [n for n in sorted(names) if importlib.util.find_spec(n) is None]
    scripts = {m for m in re.findall(r"python\s+((?:experiments|docs|tests)/[\w./-]+\.py)", text)}
    missing += [s for s in sorted(scripts) if not (ROOT / s).exists()]
    assert missing == [], f"{rel(page)} runs what does not exist: {missing}"


def readme_python_blocks() -> list[tuple[str, bool]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for lang, body, start in fenced_blocks(text):
        if lang == "python":
            needs_model = text[:start].rstrip().endswith(NEEDS_MODEL)
            out.append((body, needs_model))
    return out


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_the_readme_python_blocks_run(index: int, monkeypatch: pytest.MonkeyPatch):
    body, needs_model = readme_python_blocks()[index]
    if needs_model and os.environ.get("TOOLFORMER_DOCS_RUN_MODEL") != "1":
        pytest.skip("loads a model and runs the pipeline (minutes on a CPU); TOOLFORMER_DOCS_RUN_MODEL=1 runs it")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(body, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    # `print(...)  # text` says what it prints: the text must be one of the lines printed
    expected = re.findall(r"^print\(.*\)\s+#\s+(.+?)\s*$", body, re.M)
    printed = out.getvalue().splitlines()
    assert [e for e in expected if e not in printed] == [], f"printed {printed}, the README says {expected}"


def test_the_readme_has_runnable_python():
    assert any(not needs for _, needs in readme_python_blocks()), "the README needs a Python block that runs as is"


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


def _tables_module():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", [README, *DOCS], ids=rel)
def test_generated_tables_are_what_make_docs_writes(page: Path):
    tables = _tables_module()
    text = page.read_text(encoding="utf-8")
    rendered = tables.render(text)
    assert rendered == text, f"{rel(page)}: a generated table is stale; run `make docs`"
    assert tables.render(rendered) == rendered, "make docs is not idempotent"


def test_the_readme_results_table_is_generated():
    text = README.read_text(encoding="utf-8")
    assert "<!-- results:begin -->" in text and "<!-- results:end -->" in text


# The product's text: what a user reads or runs. Chat's visitor sessions and `--sessions` are fine; a number after
# "session" is not. The patterns are assembled so that this file does not match them itself.
PROCESS_WORDS = re.compile(
    "|".join(["sess" + r"ion ?[0-9]+", "iss" + r"ue ?[0-9]+", r"\bruns" + r"/r[0-9]", "dev" + " machine"]), re.I)
ABSOLUTE_PATHS = re.compile(r"(?<![\w.~])/(?:" + "|".join(["work", "home", "Users", "root"]) + r")/[\w.-]")
PRODUCT_DIRS = ("docs", "toolformer_app", "tests", "experiments")
TEXT_SUFFIXES = {".py", ".md", ".json", ".txt", ".sh", ".toml", ".cfg", ".jinja", ".css", ".html", ".js", ".yml",
                 ".yaml", ""}


def product_files() -> list[Path]:
    files = [README, ROOT / "CHANGELOG.md", ROOT / "Makefile"]
    for d in PRODUCT_DIRS:
        files += [p for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and "__pycache__" not in p.parts]
    for model in (ROOT / "assets" / "models").glob("*"):
        files += [f for f in (model / "README.md", model / "toolformer_card.json") if f.exists()]
    return sorted(set(files))


def _hits(pattern: re.Pattern[str]) -> list[str]:
    hits = []
    for path in product_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            m = pattern.search(line)
            if m:
                hits.append(f"{rel(path)}:{n}: {m.group(0)!r}")
    return hits


def test_no_word_of_how_the_project_was_built():
    hits = _hits(PROCESS_WORDS)
    assert hits == [], f"{len(hits)} process words in the product:\n" + "\n".join(hits[:60])


def test_no_absolute_path_in_the_product():
    hits = _hits(ABSOLUTE_PATHS)
    assert hits == [], f"{len(hits)} absolute paths in the product:\n" + "\n".join(hits[:60])


DESIGN_NOTE = re.compile(r"\b([A-Z][A-Z0-9_]+\.md)\b")


def test_no_document_cited_that_is_not_in_the_repository():
    """An upper-case Markdown file named in the product must be in the repository (cite a docs/ page instead)."""
    present = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts and "runs" not in p.parts}
    missing = [hit for hit in _hits(DESIGN_NOTE) if DESIGN_NOTE.search(hit.split(": ", 1)[1]).group(1) not in present]
    assert missing == [], "documents cited but not in the repository:\n" + "\n".join(missing)


def _experiment_entries() -> list[tuple[str, str]]:
    text = prose((ROOT / "docs" / "experiments.md").read_text(encoding="utf-8"))
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_each_experiment_entry_has_its_question_rule_verdict_and_commit():
    entries = _experiment_entries()
    assert entries and entries[-1][0] == "Facts through QA", "the log ends with its Facts through QA entry"
    incomplete = []
    for title, body in entries[:-1]:
        missing = [part for part in ("**Question.**", "**Rule", "**Verdict.**") if part not in body]
        if not re.search(r"Recorded \d{4}-\d\d-\d\d, commits? `[0-9a-f]{7,}`", body):
            missing.append("Recorded <date>, commit `<sha>`")
        if missing:
            incomplete.append(f"{title}: {', '.join(missing)}")
    assert incomplete == [], "experiment entries without their parts:\n" + "\n".join(incomplete)


def test_the_commits_the_docs_cite_exist():
    if not (ROOT / ".git").is_dir() or (ROOT / ".git" / "shallow").exists():
        pytest.skip("needs the repository's full history")
    text = "\n".join(p.read_text(encoding="utf-8") for p in [*PAGES, *(ROOT / "docs" / "bench").glob("*.json")])
    shas = sorted(set(re.findall(r"commits? `([0-9a-f]{7,40})`", text)) | set(re.findall(r'"commit": "([0-9a-f]{7,40})"', text)))
    result = subprocess.run(["git", "cat-file", "--batch-check"], input="\n".join(shas) + "\n", cwd=ROOT,
                            capture_output=True, text=True, check=True)
    missing = [line.split()[0] for line in result.stdout.splitlines() if line.endswith("missing")]
    assert missing == [], f"commits cited in the docs that git does not know: {missing}"


def test_the_readme_sections_come_in_their_order():
    """Pitch, results, quick start, use, method, own tools, Spaces, limits, docs index, development, citation."""
    h2 = [m.group(2) for m in HEADING.finditer(prose(README.read_text(encoding="utf-8"))) if m.group(1) == "##"]
    assert h2 == ["Results at a glance", "Quick start", "Using it", "How it works", "Your own tools",
                  "Hugging Face Spaces", "Limits", "Documentation", "Development", "Licenses and citation"]


# "`name` in `path`" and "`path` (`name`": the name must be defined in that file (modules move; the docs follow).
NAME_IN_PATH = (re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?` in `((?:toolformer_app|tests|experiments)/[\w/]+\.py)`"),
                re.compile(r"`((?:toolformer_app|tests|experiments)/[\w/]+\.py)` \(`([A-Za-z_][\w.]*)`"))


@pytest.mark.parametrize("page", [README, *DOCS], ids=rel)
def test_every_name_said_to_live_in_a_file_is_defined_there(page: Path):
    text = page.read_text(encoding="utf-8")
    pairs = {(m.group(1), m.group(2)) for m in NAME_IN_PATH[0].finditer(text)}
    pairs |= {(m.group(2), m.group(1)) for m in NAME_IN_PATH[1].finditer(text)}
    missing = []
    for name, path in sorted(pairs):
        source = (ROOT / path).read_text(encoding="utf-8") if (ROOT / path).exists() else ""
        last = re.escape(name.split(".")[-1])
        if not re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{last}\b|^\s*{last}\s*[:=]", source, re.M):
            missing.append(f"{name} in {path}")
    assert missing == [], f"{rel(page)} places names where they are not defined: {', '.join(missing)}"
