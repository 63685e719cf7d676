"""Clean Pythons for the standalone verify.py: a new virtualenv holding only `cryptography`.

verify.py (dockd/integrity/standalone_verify.py) goes onto every disc and into
every log export and promises to need nothing but Python 3.8+ and
`cryptography`; the tests of discs (tests/archive) and of log exports
(tests/integrity) run it in these, where dockd cannot be imported. Their
conftest.py files import the fixtures from here.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def clean_python(python: str, where: Path, wheels: Path, *, crypto: bool = True) -> Path:
    """A new virtualenv of `python` with nothing but `cryptography` (and its dependencies)."""
    subprocess.run(
        [python, "-m", "venv", "--clear", str(where)], check=True, capture_output=True, timeout=300
    )
    venv_python = where / "bin" / "python"
    if not crypto:
        return venv_python
    pip = [str(venv_python), "-m", "pip", "--disable-pip-version-check", "-q"]
    if not list(wheels.glob("cryptography-*.whl")):
        # Once per machine: the wheels stay in pytest's cache for later runs.
        proc = subprocess.run(
            [*pip, "download", "--only-binary=:all:", "cryptography", "-d", str(wheels)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot download the cryptography wheel: {proc.stderr[-300:]}")
    subprocess.run(
        [*pip, "install", "--no-index", "--find-links", str(wheels), "cryptography"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv_python


def find_python38() -> str | None:
    """A Python 3.8 interpreter (pyenv's or on PATH), the oldest verify.py promises."""
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in filter(None, roots):
        for found in sorted(glob.glob(os.path.join(root, "versions", "3.8*", "bin", "python3.8"))):
            return found
    which = shutil.which("python3.8")
    if which and subprocess.run([which, "-c", ""], capture_output=True).returncode == 0:
        return which
    return None


def bare_env() -> dict[str, str]:
    """The environment of someone who has only Python: no PYTHONPATH, no virtualenv."""
    return {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}


@pytest.fixture(scope="session")
def fresh_python(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """This interpreter, in a fresh virtualenv holding only `cryptography`."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    wheels = request.config.cache.mkdir(f"archive-wheels-py{version}")
    return clean_python(sys.executable, tmp_path_factory.mktemp("venv") / "py", wheels)


@pytest.fixture(scope="session")
def python38(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Python 3.8 (the oldest verify.py promises) in a fresh virtualenv with `cryptography`."""
    found = find_python38()
    if found is None:
        pytest.skip("no Python 3.8 on this machine")
    wheels = request.config.cache.mkdir("archive-wheels-py3.8")
    return clean_python(found, tmp_path_factory.mktemp("venv38") / "py", wheels)


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python 3.8 if there is one (else this one) in a virtualenv without `cryptography`."""
    found = find_python38() or sys.executable
    return clean_python(found, tmp_path_factory.mktemp("venvbare") / "py", Path(), crypto=False)
