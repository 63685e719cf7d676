"""The verify.py that `dockd log export` ships: the disc's checker, standalone, same verdicts.

An outsider has Python and `cryptography`, not dockd (issue 13): the export
carries dockd/integrity/standalone_verify.py as verify.py. These tests run
that copy from the export folder in a fresh virtualenv and compare its
verdicts with `python -m dockd.integrity.offline` and with an oracle built
from dockd's own note, checkpoint, merkle and chain modules.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.archive.bag import verify_py
from dockd.clock import FixedClock
from dockd.config import Config, IngestConfig
from dockd.devices.profiles import make_profile
from dockd.errors import VerifyError
from dockd.integrity import merkle, standalone_verify
from dockd.integrity.chain import GENESIS, LogEntry
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.note import VerifierKey, open_note, sign
from dockd.runner.session import run_session
from dockd.service import EXPORT_README, Service
from tests.conftest import NOW, put
from tests.fresh_python import bare_env

ROOT = Path(__file__).resolve().parents[2]


class Export(NamedTuple):
    folder: Path  # as `dockd log export` wrote it; tests change copies
    key: str  # the checkpoint key, as an auditor's independent copy has it


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Export:
    tmp = tmp_path_factory.mktemp("export")
    ingest = IngestConfig(change_retry_delay=0.0, min_free_bytes=0)
    config = dataclasses.replace(Config(), state_dir=tmp / "state", ingest=ingest)
    cam = tmp / "cam"
    for i in range(5):
        put(cam, f"DCIM/{i}.mp4", f"clip {i}".encode())
    with Service(config, FixedClock(NOW)) as svc:
        run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=True)
        svc.export_log(tmp / "out")
        key = svc.trusted_keys()[0].to_text()
    return Export(tmp / "out", key)


def _copy(export: Export, where: Path) -> Path:
    return Path(shutil.copytree(export.folder, where))


def _run_shipped(python: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The folder's verify.py as its recipient runs it: in the folder, with only Python."""
    return subprocess.run(
        [str(python), "verify.py", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=folder,
        env=bare_env(),
        timeout=120,
    )


def _run_offline(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockd.integrity.offline", str(folder), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        timeout=120,
    )


def _dockd_accepts(folder: Path, keys: list[str] | None) -> bool:
    """The verdict of dockd's own modules: signed note, checkpoint, RFC 9162, chain."""
    try:
        texts = keys or (folder / "keys.txt").read_text("utf-8").split()
        note = (folder / "checkpoint.txt").read_text("utf-8")
        checkpoint = Checkpoint.from_text(
            open_note(note, [VerifierKey.from_text(t) for t in texts]).text
        )
        proofs = json.loads((folder / "proofs.json").read_text("utf-8"))
        lines = (folder / "entries.jsonl").read_bytes().splitlines()
        first, last = proofs["from"], proofs["to"]
        if proofs["tree_size"] != checkpoint.size or len(lines) != last - first + 1:
            return False
        prev = GENESIS if first == 1 else proofs["prev_of_first"]
        for offset, raw in enumerate(lines):
            entry = LogEntry.from_bytes(raw)
            path = [base64.b64decode(h, validate=True) for h in proofs["inclusion"][offset]]
            leaf = merkle.leaf_hash(raw)
            if entry.seq != first + offset or entry.prev != prev:
                return False
            if not merkle.verify_inclusion(
                entry.seq - 1, checkpoint.size, leaf, path, checkpoint.root
            ):
                return False
            prev = hashlib.sha256(raw).hexdigest()
    except (OSError, ValueError, KeyError, IndexError, VerifyError):
        return False
    return True


# -- the tampering an outsider's check must catch ---------------------------------------


def _lines(folder: Path) -> list[bytes]:
    return (folder / "entries.jsonl").read_bytes().splitlines()


def _write(folder: Path, lines: list[bytes]) -> None:
    (folder / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def _origin(folder: Path) -> str:
    return Checkpoint.from_text(
        (folder / "checkpoint.txt").read_text().split("\n\n")[0] + "\n"
    ).origin


def _resign(folder: Path, size: int, root: bytes, attacker: Ed25519PrivateKey) -> None:
    origin = _origin(folder)
    (folder / "checkpoint.txt").write_text(
        sign(Checkpoint(origin, size, root).to_text(), origin, attacker)
    )


def _edit(folder: Path) -> None:
    lines = _lines(folder)
    lines[3] = lines[3].replace(b"DCIM", b"DCIX")
    _write(folder, lines)


def _uncanonical(folder: Path) -> None:
    lines = _lines(folder)
    lines[1] = lines[1].replace(b'","', b'", "', 1)
    _write(folder, lines)


def _delete(folder: Path) -> None:
    lines = _lines(folder)
    _write(folder, lines[:2] + lines[3:])


def _duplicate(folder: Path) -> None:
    lines = _lines(folder)
    _write(folder, [*lines[:2], lines[1], *lines[2:]])


def _reorder(folder: Path) -> None:
    lines = _lines(folder)
    _write(folder, [*lines[:2], lines[3], lines[2], *lines[4:]])


def _replace_checkpoint(folder: Path) -> None:
    size = len(_lines(folder))
    _resign(folder, size, bytes(32), Ed25519PrivateKey.generate())


def _replace_checkpoint_and_keys(folder: Path) -> None:
    attacker = Ed25519PrivateKey.generate()
    _resign(folder, len(_lines(folder)), bytes(32), attacker)
    (folder / "keys.txt").write_text(VerifierKey.of(_origin(folder), attacker).to_text() + "\n")


def _truncate_and_resign(folder: Path) -> None:
    """Entries cut to 3 and everything re-made to match, signed with the attacker's key."""
    lines = _lines(folder)[:3]
    _write(folder, lines)
    leaves = [merkle.leaf_hash(raw) for raw in lines]
    nodes = merkle.build_nodes(leaves)

    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    proofs = json.loads((folder / "proofs.json").read_text())
    paths = [merkle.inclusion_proof(read, i, 3) for i in range(3)]
    proofs |= {
        "to": 3,
        "tree_size": 3,
        "inclusion": [[base64.b64encode(h).decode() for h in p] for p in paths],
    }
    (folder / "proofs.json").write_text(json.dumps(proofs))
    attacker = Ed25519PrivateKey.generate()
    _resign(folder, 3, merkle.root_hash(read, 3), attacker)
    (folder / "keys.txt").write_text(VerifierKey.of(_origin(folder), attacker).to_text() + "\n")


def _flip_proof(folder: Path) -> None:
    proofs = json.loads((folder / "proofs.json").read_text())
    raw = bytearray(base64.b64decode(proofs["inclusion"][2][0]))
    raw[0] ^= 1
    proofs["inclusion"][2][0] = base64.b64encode(bytes(raw)).decode()
    (folder / "proofs.json").write_text(json.dumps(proofs))


def _drop_proofs(folder: Path) -> None:
    (folder / "proofs.json").unlink()


class Case(NamedTuple):
    name: str
    tamper: Callable[[Path], None] | None
    keys: str  # "file": trust keys.txt; "pinned": --key the dock's key; "stranger": another
    expect: str | None  # a problem line that must be printed; None: intact


CASES = [
    Case("intact", None, "file", None),
    Case("intact, pinned key", None, "pinned", None),
    Case("edited entry", _edit, "pinned", "entries.jsonl line 4 (log entry 4): is not included"),
    Case("uncanonical entry", _uncanonical, "pinned", "line 2 (log entry 2): is not canonical"),
    Case("deleted entry", _delete, "pinned", "entries.jsonl: log entry 3 is missing"),
    Case("inserted entry", _duplicate, "pinned", "line 3 (log entry 2): appears a second time"),
    Case("reordered", _reorder, "pinned", "line 4 (log entry 3): comes after log entry 4"),
    Case(
        "replaced checkpoint",
        _replace_checkpoint,
        "pinned",
        "checkpoint.txt: is not signed by any key of the --key keys",
    ),
    Case(
        "replaced checkpoint and keys.txt", _replace_checkpoint_and_keys, "file", "is not included"
    ),
    Case(
        "another key",
        None,
        "stranger",
        "checkpoint.txt: is not signed by any key of the --key keys",
    ),
    Case(
        "truncated, re-signed by another key",
        _truncate_and_resign,
        "pinned",
        "checkpoint.txt: is not signed by any key of the --key keys",
    ),
    Case("changed proof", _flip_proof, "pinned", "line 3 (log entry 3): is not included"),
    Case("proofs.json deleted", _drop_proofs, "pinned", "proofs.json: is missing or malformed"),
]


def _prepare(case: Case, pristine: Export, where: Path) -> tuple[Path, list[str] | None]:
    """A copy of the export with the case's tampering done, and the --key values to give."""
    folder = _copy(pristine, where)
    if case.tamper is not None:
        case.tamper(folder)
    if case.keys == "file":
        return folder, None
    if case.keys == "pinned":
        return folder, [pristine.key]
    return folder, [VerifierKey.of(_origin(folder), Ed25519PrivateKey.generate()).to_text()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shipped_verify_py_and_the_offline_module_agree(
    case: Case, pristine: Export, tmp_path: Path, fresh_python: Path
) -> None:
    folder, keys = _prepare(case, pristine, tmp_path / "export")
    args = [a for k in keys or [] for a in ("--key", k)]
    shipped = _run_shipped(fresh_python, folder, *args)
    offline = _run_offline(folder, *args)
    assert (shipped.returncode, shipped.stdout) == (offline.returncode, offline.stdout)
    assert shipped.stderr == "", shipped.stderr
    if case.expect is None:
        assert shipped.returncode == 0, shipped.stdout
        assert shipped.stdout.startswith("OK / 通过: log entries 1 to ")
    else:
        assert shipped.returncode == 1, shipped.stdout
        assert any(case.expect in line for line in shipped.stdout.splitlines()), shipped.stdout
    assert _dockd_accepts(folder, keys) == (shipped.returncode == 0)


def test_shipped_verify_py_runs_with_only_python_and_cryptography(
    pristine: Export, tmp_path: Path, fresh_python: Path
) -> None:
    folder = _copy(pristine, tmp_path / "export")
    probe = (
        "import importlib.metadata as m, importlib.util as u, json\n"
        "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))\n"
        "print(u.find_spec('dockd'))\n"
    )
    proc = subprocess.run(
        [str(fresh_python), "-c", probe], capture_output=True, text=True, cwd=folder, env=bare_env()
    )
    installed, dockd_spec = proc.stdout.splitlines()
    assert set(json.loads(installed)) <= {
        "cryptography",
        "cffi",
        "pycparser",
        "pip",
        "setuptools",
    }
    assert "cryptography" in installed
    assert dockd_spec == "None", "dockd must not be importable where verify.py is tried"

    intact = _run_shipped(fresh_python, folder, "--key", pristine.key)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.startswith("OK")
    # Without FOLDER from elsewhere: it checks the folder it is in, as on a disc.
    elsewhere = subprocess.run(
        [str(fresh_python), str(folder / "verify.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bare_env(),
    )
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr

    _edit(folder)
    edited = _run_shipped(fresh_python, folder, "--key", pristine.key)
    assert edited.returncode == 1
    assert edited.stdout.splitlines()[0].startswith(
        "entries.jsonl line 4 (log entry 4): is not included in the signed log"
    ), edited.stdout


def test_shipped_verify_py_runs_on_python_3_8(
    pristine: Export, tmp_path: Path, python38: Path
) -> None:
    """Every case of the differential test, on the oldest Python verify.py promises."""
    for number, case in enumerate(CASES):
        folder, keys = _prepare(case, pristine, tmp_path / str(number))
        args = [a for k in keys or [] for a in ("--key", k)]
        offline = _run_offline(folder, *args)
        old = _run_shipped(python38, folder, *args)
        assert (old.returncode, old.stdout) == (offline.returncode, offline.stdout), case.name
        assert old.returncode == (0 if case.expect is None else 1), case.name


def test_the_command_the_export_readme_shows_works(
    pristine: Export, tmp_path: Path, fresh_python: Path
) -> None:
    folder = _copy(pristine, tmp_path / "export")
    readme = (folder / "README.txt").read_text("utf-8")
    assert "-m dockd" not in readme, "an outsider has no dockd"
    [command] = re.findall(r"^ +(python3 verify\.py .*)$", readme, re.MULTILINE)
    assert re.search(r"^ +py verify\.py --key ", readme, re.MULTILINE), "the Windows command"
    argv = command.replace('"<key from an independent copy>"', pristine.key).split()
    assert argv[:2] == ["python3", "verify.py"] and pristine.key in argv
    proc = _run_shipped(fresh_python, folder, *argv[2:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And the project's README tells the same.
    project = (ROOT / "README.md").read_text("utf-8")
    assert "python3 verify.py --key" in project and "py verify.py" in project
    proofs = json.loads((folder / "proofs.json").read_text("utf-8"))
    span = {"first": proofs["from"], "last": proofs["to"], "size": proofs["tree_size"]}
    assert readme == EXPORT_README.format(**span)


def test_one_checker_for_discs_and_exports(pristine: Export) -> None:
    shipped = (pristine.folder / "verify.py").read_bytes()
    assert shipped == verify_py() == standalone_verify.source()
    assert Path(standalone_verify.__file__).read_bytes() == shipped
    assert standalone_verify.is_log_export(str(pristine.folder))
