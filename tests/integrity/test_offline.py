"""`dockd log export` + the offline verifier: an outsider's check of the log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.ingest.session import run_session
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.note import VerifierKey, sign
from dockd.integrity.offline import verify_export
from dockd.service import Service
from tests.conftest import put


@pytest.fixture
def export(tmp_path: Path, config: Config, clock: FixedClock) -> tuple[Path, str]:
    cam = tmp_path / "cam"
    for i in range(5):
        put(cam, f"DCIM/{i}.mp4", f"clip {i}".encode())
    with Service(config, clock) as svc:
        run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=True)
        svc.export_log(tmp_path / "out")
        key = svc.trusted_keys()[0].to_text()
    return tmp_path / "out", key


def _lines(folder: Path) -> list[bytes]:
    return (folder / "entries.jsonl").read_bytes().splitlines()


def _write(folder: Path, lines: list[bytes]) -> None:
    (folder / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def test_clean_export_verifies_in_a_fresh_process(export: tuple[Path, str]) -> None:
    folder, key = export
    proc = subprocess.run(
        [sys.executable, "-m", "dockd.integrity.offline", str(folder), "--key", key],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert "OK" in proc.stdout


def test_offline_verifier_imports_only_stdlib_and_cryptography() -> None:
    code = (
        "import sys; import dockd.integrity.offline\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names\n"
        "  and m.split('.')[0] not in ('cryptography', '_cffi_backend', '_openssl', '__main__',\n"
        "  '_distutils_hack') and not m.startswith('__editable__')\n"
        "  and m not in ('dockd', 'dockd.integrity', 'dockd.integrity.offline',\n"
        "  'dockd.integrity.merkle', 'dockd.integrity.note', 'dockd.integrity.checkpoint',\n"
        "  'dockd.errors'))\n"
        "print(bad)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_edited_entry_is_named(export: tuple[Path, str]) -> None:
    folder, key = export
    lines = _lines(folder)
    lines[3] = lines[3].replace(b"DCIM", b"DCIX")
    _write(folder, lines)
    problems = verify_export(folder, [key])
    assert any("log entry 4" in p and "not included" in p for p in problems)


def test_deleted_inserted_and_reordered_entries_are_found(export: tuple[Path, str]) -> None:
    folder, key = export
    original = _lines(folder)
    for lines in (
        original[:2] + original[3:],
        [*original[:2], original[1], *original[2:]],
        [*original[:2], original[3], original[2], *original[4:]],
    ):
        _write(folder, lines)
        assert verify_export(folder, [key]), "must fail closed"


def test_replaced_checkpoint_and_substituted_key_are_found(export: tuple[Path, str]) -> None:
    folder, key = export
    cp = Checkpoint.from_text((folder / "checkpoint.txt").read_text().split("\n\n")[0] + "\n")
    attacker = Ed25519PrivateKey.generate()
    forged = sign(Checkpoint(cp.origin, cp.size, bytes(32)).to_text(), cp.origin, attacker)
    (folder / "checkpoint.txt").write_text(forged)
    assert verify_export(folder, [key]) == ["checkpoint.txt: note is not signed by any trusted key"]
    # The attacker also swaps keys.txt: only a key from an independent copy exposes it.
    (folder / "keys.txt").write_text(VerifierKey.of(cp.origin, attacker).to_text() + "\n")
    assert verify_export(folder, [key])
    assert any("not included" in p for p in verify_export(folder))


def test_truncated_log_resigned_with_a_new_key_is_found(export: tuple[Path, str]) -> None:
    folder, key = export
    lines = _lines(folder)[:3]
    _write(folder, lines)
    proofs = json.loads((folder / "proofs.json").read_text())
    proofs["inclusion"] = proofs["inclusion"][:3]
    (folder / "proofs.json").write_text(json.dumps(proofs))
    attacker = Ed25519PrivateKey.generate()
    origin = Checkpoint.from_text(
        (folder / "checkpoint.txt").read_text().split("\n\n")[0] + "\n"
    ).origin
    (folder / "checkpoint.txt").write_text(
        sign(Checkpoint(origin, 3, bytes(32)).to_text(), origin, attacker)
    )
    problems = verify_export(folder, [key])
    assert problems == ["checkpoint.txt: note is not signed by any trusted key"]
