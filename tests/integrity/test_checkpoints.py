"""Checkpoints on a real state directory: signed after each session, consistent,
and every tampering with the log, a checkpoint or the key is found by verify."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.integrity.merkle import verify_inclusion
from dockd.runner.session import run_session
from dockd.service import IntegrityError, Service
from tests.conftest import put


def _dock(svc: Service, cam: Path, config: Config, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        put(cam, f"DCIM/{i}.mp4", f"clip {i}".encode())
    run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=True)


def _kinds(svc: Service) -> set[str]:
    return {p.kind for p in svc.verify().problems}


def _sql(svc: Service, script: str) -> None:
    conn = sqlite3.connect(svc.catalog.path)
    conn.executescript(script)
    conn.close()


def test_session_end_signs_a_checkpoint_and_proofs_verify(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    import base64

    with Service(config, clock) as svc:
        _dock(svc, tmp_path / "cam", config, 3)
        first = svc.catalog.last_checkpoint()
        assert first is not None and first["size"] == svc.catalog.head()[0]
        _dock(svc, tmp_path / "cam", config, 2, start=3)
        assert len(svc.catalog.checkpoints()) == 2
        proof = svc.inclusion(2).as_json()
        root = base64.b64decode(proof["checkpoint"].split("\n")[2])
        assert verify_inclusion(
            proof["leaf_index"],
            proof["tree_size"],
            base64.b64decode(proof["leaf_hash"]),
            [base64.b64decode(h) for h in proof["inclusion_path"]],
            root,
        )
        assert svc.verify().ok


def test_rotation_keeps_old_checkpoints_verifiable(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    with Service(config, clock) as svc:
        _dock(svc, tmp_path / "cam", config, 2)
        old = svc.trusted_keys()
        new = svc.rotate_key()
        assert new not in old and len(svc.trusted_keys()) == 2
        assert svc.verify().ok


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # (1 key.created, 2 retention.policy, 3 session.started, 4.. recording.ingested)
        # edit an entry, as text and as bytes (recomputing nothing else)
        (
            "UPDATE log SET entry = CAST(replace(entry, 'DCIM', 'DCIX') AS BLOB) WHERE seq = 4",
            "checkpoint_inconsistent",
        ),
        (
            "UPDATE log SET entry = replace(entry, 'DCIM', 'DCIX') WHERE seq = 4",
            "checkpoint_inconsistent",
        ),
        # delete one entry in the middle: the log is now shorter than signed
        ("DELETE FROM log WHERE seq = 3", "checkpoint_ahead_of_log"),
        # insert an entry in the middle (renumbering the rest)
        (
            "UPDATE log SET seq = seq + 1000 WHERE seq > 3; UPDATE log SET seq = seq - 999 "
            "WHERE seq > 1000; INSERT INTO log VALUES (4, 't', 'x', X'7b7d', 'h')",
            "checkpoint_inconsistent",
        ),
        # reorder two entries
        (
            "UPDATE log SET seq = -seq WHERE seq IN (3, 4); UPDATE log SET seq = 7 - (-seq) "
            "WHERE seq < 0",
            "checkpoint_inconsistent",
        ),
        # truncate the log: the checkpoint is ahead of it
        ("DELETE FROM log WHERE seq > 3", "checkpoint_ahead_of_log"),
        # replace a checkpoint's signer, or its size
        ("UPDATE checkpoints SET note = replace(note, '— ', '— x')", "checkpoint_untrusted"),
        ("UPDATE checkpoints SET size = size - 1", "checkpoint_row_changed"),
        (
            "UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 0",
            "merkle_node_changed",
        ),
    ],
)
def test_tampering_is_found(
    tmp_path: Path, config: Config, clock: FixedClock, script: str, expected: str
) -> None:
    with Service(config, clock) as svc:
        _dock(svc, tmp_path / "cam", config, 3)
        assert svc.verify().ok
        _sql(
            svc,
            "DROP TRIGGER log_no_update; DROP TRIGGER log_no_delete; "
            "DROP TRIGGER checkpoints_no_update; DROP TRIGGER merkle_nodes_no_update; " + script,
        )
        assert expected in _kinds(svc)


def test_substituted_key_and_resigned_checkpoint_are_found(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    """An attacker who truncates the log and re-signs with a new key of their own."""
    with Service(config, clock) as svc:
        _dock(svc, tmp_path / "cam", config, 3)
        key_file = svc.state_dir / "keys" / "checkpoint.key"
    _ = key_file
    with Service(config, clock) as svc:
        _sql(
            svc,
            "DROP TRIGGER log_no_delete; DROP TRIGGER checkpoints_no_delete; "
            "DROP TRIGGER merkle_nodes_no_delete; DELETE FROM log WHERE seq > 4; "
            "DELETE FROM merkle_nodes WHERE idx >= (4 >> level); "
            "DELETE FROM checkpoints; DELETE FROM signing_keys;",
        )
        key_file.unlink()
    with Service(config, clock) as svc:  # makes and logs a fresh key, signs again
        kinds = _kinds(svc)
    assert kinds & {"catalog_row_unlogged", "merkle_node_extra", "catalog_row_missing"}


def test_refuses_to_sign_a_log_that_is_not_an_extension(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    with Service(config, clock) as svc:
        _dock(svc, tmp_path / "cam", config, 3)
        _sql(
            svc,
            "DROP TRIGGER merkle_nodes_no_update; "
            "UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 2",
        )
        with pytest.raises(IntegrityError, match="refusing to sign"):
            svc.checkpoint()


def test_two_sessions_ending_at_once_both_sign(
    tmp_path: Path, config: Config, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by bench/dock_scale.py with daemon.workers = 2: one session read the log's
    head, a second appended and signed, and the first then found its (stale) head
    behind the newest checkpoint and refused to sign. Here the second session's append
    and checkpoint are started at exactly that instant, from another thread."""
    import threading

    with Service(config, clock) as svc:
        _dock(svc, tmp_path / "cam", config, 2)
        real = svc.catalog.last_checkpoint
        other: list[threading.Thread] = []
        errors: list[BaseException] = []

        def second_session() -> None:
            try:
                svc.begin_session("CAM2", "gat947", "/dev/sdz1", wipe=False)
                svc.checkpoint()
            except BaseException as exc:
                errors.append(exc)

        def between_head_and_checkpoint() -> object:
            if not other:
                other.append(threading.Thread(target=second_session))
                other[0].start()
                other[0].join(timeout=1.0)  # it must wait for this checkpoint, not pass it
            return real()

        monkeypatch.setattr(svc.catalog, "last_checkpoint", between_head_and_checkpoint)
        svc.checkpoint()  # must not raise IntegrityError
        other[0].join(timeout=30)
        monkeypatch.undo()
        assert not other[0].is_alive() and errors == []
        sizes = [int(c["size"]) for c in svc.catalog.checkpoints()]
        assert sizes == sorted(sizes) and sizes[-1] == svc.catalog.head()[0]
        assert _kinds(svc) == set()
