"""The project installs as a package: it imports from any folder, and `toolformer` is the CLI.

`make` installs the project into .venv with `pip install --no-deps -e .`; these tests run the venv's own python
and its `toolformer` script from a temporary folder, with no PYTHONPATH, as a user's script or notebook would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPT = BIN / "toolformer"


@pytest.fixture(scope="module")
def installed() -> None:
    """The venv running the tests has the project installed (its console script sits beside its python)."""
    if not SCRIPT.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SCRIPT} is missing: `make setup` installs the project with `pip install --no-deps -e .`")
        pytest.skip(f"the project is not installed in {sys.prefix} (`make setup`, or pip install --no-deps -e .)")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def test_package_imports_from_another_folder(installed, tmp_path):
    script = tmp_path / "use_it.py"
    script.write_text(
        "import toolformer_app\n"
        "from toolformer_app import Toolformer, get_tool, invoke_tools\n"
        "tools = {'Calculator': get_tool('Calculator')}\n"
        "print(invoke_tools(tools, 'It is 42 [Calculator(40 + 2)] in all.'))\n"
        "print(toolformer_app.__version__)\n"
    )
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_clean_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[Calculator(40 + 2) -> 42]" in out.stdout


def test_toolformer_console_script_runs_from_another_folder(installed, tmp_path):
    out = subprocess.run([str(SCRIPT), "--help"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: toolformer ")
    for command in ("generate", "finetune", "chat", "eval", "tool"):
        assert command in out.stdout
    tool = subprocess.run([str(SCRIPT), "tool", "Calculator", "400 / 1400"], cwd=tmp_path, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert (tool.returncode, tool.stdout.strip()) == (0, "0.29"), tool.stderr


def test_project_table_matches_requirements():
    """pyproject's dependencies are requirements.txt less gradio (the `ui` extra): one list, no drift."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(lines: list[str]) -> dict[str, str]:
        out = {}
        for line in lines:
            spec = line.split("#")[0].strip()
            if spec:
                name = spec.split(";")[0]
                for sep in ("==", ">=", "<=", "<", ">", "~=", "!="):
                    name = name.split(sep)[0]
                out[name.strip().lower()] = spec.replace(" ", "")
        return out

    reqs = names((REPO / "requirements.txt").read_text().splitlines())
    deps = names(project["dependencies"])
    ui = names(project["optional-dependencies"]["ui"])
    assert reqs == deps | ui
    assert set(project["optional-dependencies"]) >= {"dev", "ui"}
    assert project["scripts"]["toolformer"] == "toolformer_app.cli:main"
    dev = names((REPO / "requirements-dev.txt").read_text().splitlines())
    assert set(dev) == set(names(project["optional-dependencies"]["dev"]))


def test_constraints_pin_every_requirement_exactly():
    lock = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            lock[name.strip().lower().replace("_", "-")] = version.strip()
    for req in ("requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt"):
        for line in (REPO / req).read_text().splitlines():
            spec = line.split("#")[0].strip()
            if not spec:
                continue
            name = spec
            for sep in ("==", ">=", "<=", "<", ">", "~=", "!="):
                name = name.split(sep)[0]
            assert name.strip().lower().replace("_", "-") in lock, f"{req}: {name} is not in constraints.txt"
    assert lock["torch"] == "2.13.0"
