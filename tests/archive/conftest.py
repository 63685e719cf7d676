"""Session fixtures: one dock, one staged bag, one image; clean Pythons for verify.py come
from tests/fresh_python.py (shared with the log export's tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockd.archive.iso import extract_iso
from tests.archive.discs import Dock, Staged, build_disc, make_dock, open_service, stage_disc
from tests.fresh_python import bare_python, fresh_python, python38  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def dock(tmp_path_factory: pytest.TempPathFactory, clip_bank: list[Path]) -> Dock:
    return make_dock(tmp_path_factory.mktemp("dock"), clip_bank)


@pytest.fixture(scope="session")
def staged(dock: Dock, tmp_path_factory: pytest.TempPathFactory) -> Staged:
    with open_service(dock) as svc:
        return stage_disc(svc, list(dock.ids), tmp_path_factory.mktemp("staged") / "bag")


@pytest.fixture(scope="session")
def disc_iso(staged: Staged, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_disc(staged, tmp_path_factory.mktemp("iso") / "disc.iso")


@pytest.fixture(scope="session")
def extracted(disc_iso: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_iso(disc_iso, tmp_path_factory.mktemp("extracted") / "disc")
