"""`dockd log export` + the offline verifier: an outsider's check of the log.

`python -m dockd.integrity.offline` runs the export's own verify.py checks
(dockd/integrity/standalone_verify.py); test_export_verify.py runs that copy
standalone and compares the two.
"""

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
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.note import VerifierKey, sign
from dockd.integrity.offline import verify_export
from dockd.runner.session import run_session
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
        "  'dockd.integrity.standalone_verify'))\n"
        "print(bad)"
    )
    # -E: no PYTHONPATH, so no test harness module (tests/faketime) is counted.
    proc = subprocess.run(
        [sys.executable, "-E", "-c", code], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_edited_entry_is_named(export: tuple[Path, str]) -> None:
    folder, key = export
    lines = _lines(folder)
    lines[3] = lines[3].replace(b"DCIM", b"DCIX")
    _write(folder, lines)
    problems = verify_export(folder, [key])
    assert problems[0] == (
        "entries.jsonl line 4 (log entry 4): is not included in the signed log "
        "(changed, moved or forged) [proof_invalid]"
    )
    # The next entry's link to it is broken too: the chain says the same as the tree.
    assert problems[1:] == [
        "entries.jsonl line 5 (log entry 5): its prev is not the SHA-256 of line 4 "
        "(log entry 4) [chain_broken]"
    ]


def test_deleted_inserted_and_reordered_entries_are_found(export: tuple[Path, str]) -> None:
    folder, key = export
    original = _lines(folder)
    for lines, problem in (
        (original[:2] + original[3:], "entries.jsonl: log entry 3 is missing [entry_missing]"),
        (
            [*original[:2], original[1], *original[2:]],
            "entries.jsonl line 3 (log entry 2): appears a second time [proof_invalid]",
        ),
        (
            [*original[:2], original[3], original[2], *original[4:]],
            "entries.jsonl line 4 (log entry 3): comes after log entry 4 (line 3): out of order "
            "[chain_broken]",
        ),
    ):
        _write(folder, lines)
        assert verify_export(folder, [key]) == [problem]


def test_replaced_checkpoint_and_substituted_key_are_found(export: tuple[Path, str]) -> None:
    folder, key = export
    cp = Checkpoint.from_text((folder / "checkpoint.txt").read_text().split("\n\n")[0] + "\n")
    attacker = Ed25519PrivateKey.generate()
    forged = sign(Checkpoint(cp.origin, cp.size, bytes(32)).to_text(), cp.origin, attacker)
    (folder / "checkpoint.txt").write_text(forged)
    untrusted = "checkpoint.txt: is not signed by any key of the --key keys [checkpoint_untrusted]"
    problems = verify_export(folder, [key])
    assert problems[0] == untrusted
    # The proofs are still checked against it (as on a disc): none leads to the forged root.
    assert len(problems) == 1 + len(_lines(folder))
    assert all("is not included in the signed log" in p for p in problems[1:])
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
    assert problems[0] == (
        "checkpoint.txt: is not signed by any key of the --key keys [checkpoint_untrusted]"
    )
