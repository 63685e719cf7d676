"""The command line: JSON shapes, exit codes, and tamper detection by `dockd verify`."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dockd.cli import cli
from tests.conftest import camera_name, put, recent


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    cfg = tmp_path / "dockd.toml"
    cfg.write_text("[ingest]\nchange_retry_delay = 0\nmin_free_bytes = 0\n")
    return {"cfg": cfg, "state": tmp_path / "state", "cam": tmp_path / "cam"}


def run(env: dict[str, Path], *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(env["cfg"]), "--state-dir", str(env["state"]), *args]
    )


def ingest(env: dict[str, Path], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = run(env, "ingest", str(env["cam"]), "--serial", "CAM1", "--json", *extra)
    return result.exit_code, json.loads(result.output)


def test_ingest_json_shape_and_exit_codes(
    env: dict[str, Path], recent_clips: list[Path], now_utc: datetime
) -> None:
    put(env["cam"], f"DCIM/{camera_name('012345', 'DSJ0001', recent(now_utc), 1)}", recent_clips[0])
    put(env["cam"], "DCIM/notes.txt", b"not footage")
    code, data = ingest(env)
    assert code == 0
    assert data["counts"] == {
        "ingested": 1,
        "duplicates": 0,
        "flagged": 0,
        "skipped": 1,
        "failed": 0,
        "wiped": 1,
        "wipe_failed": 0,
    }
    rec = data["recordings"][0]
    assert set(rec) >= {"id", "sha256", "size", "source_path", "store_path", "flags"}
    assert rec["store_path"] == f"sha256/{rec['sha256'][:2]}/{rec['sha256']}"
    assert data["skipped"] == [
        {"source_path": "DCIM/notes.txt", "reason": "not a media file extension"}
    ]
    put(env["cam"], "DCIM/bad.mp4", b"garbage")
    code, data = ingest(env)
    assert code == 3 and data["recordings"][0]["flags"] == ["unassigned_device", "unreadable_media"]


def test_keep_source_and_list_show(env: dict[str, Path], recent_clips: list[Path]) -> None:
    put(env["cam"], "DCIM/a.mp4", recent_clips[1])
    code, data = ingest(env, "--keep-source")
    assert code == 0 and data["counts"]["wiped"] == 0
    assert (env["cam"] / "DCIM" / "a.mp4").exists()
    listed = json.loads(run(env, "list", "--json").output)
    assert len(listed) == 1
    row = listed[0]
    for key in (
        "sha256",
        "size",
        "source_path",
        "store_path",
        "device_serial",
        "recorded_start",
        "recorded_end",
        "time_source",
        "ingested_at",
        "deadline",
        "late",
        "flags",
        "media",
    ):
        assert key in row
    assert row["media"]["video_codec"] == "h264" and row["media"]["duration_ms"] > 0
    shown = json.loads(run(env, "show", str(row["id"]), "--json").output)
    assert shown["log_entry"]["kind"] == "recording.ingested"
    assert shown["log_entry"]["data"]["sha256"] == row["sha256"]
    human = run(env, "show", str(row["id"]))
    assert human.exit_code == 0 and row["sha256"] in human.output
    assert run(env, "show", "999").exit_code == 2


def test_help_documents_exit_codes(env: dict[str, Path]) -> None:
    for args in ((), ("ingest",), ("verify",)):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert (
            "Exit codes:" in result.output
            and "4  ingest: something could not be ingested" in result.output
        )


def test_bad_serial_is_a_usage_error(env: dict[str, Path]) -> None:
    env["cam"].mkdir()
    result = run(env, "ingest", str(env["cam"]), "--serial", "a/b")
    assert result.exit_code == 2 and "--serial" in result.output


def _tamper_setup(env: dict[str, Path], recent_clips: list[Path]) -> dict:  # type: ignore[type-arg]
    put(env["cam"], "DCIM/a.mp4", recent_clips[0])
    put(env["cam"], "DCIM/b.mp4", recent_clips[1])
    code, data = ingest(env)
    assert code == 0
    clean = run(env, "verify", "--json")
    assert clean.exit_code == 0 and json.loads(clean.output)["ok"] is True
    return data


def _verify_problems(env: dict[str, Path]) -> list[dict[str, str]]:
    result = run(env, "verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    return report["problems"]  # type: ignore[no-any-return]


def test_flipped_byte_in_store_file_is_named(
    env: dict[str, Path], recent_clips: list[Path]
) -> None:
    """Invariant 2/3: a changed store file fails verify and is named."""
    data = _tamper_setup(env, recent_clips)
    path = env["state"] / "store" / data["recordings"][1]["store_path"]
    os.chmod(path, 0o600)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    os.chmod(path, 0o444)
    problems = _verify_problems(env)
    assert problems == [
        {
            "kind": "store_file_changed",
            "where": f"store file {data['recordings'][1]['store_path']}",
            "detail": problems[0]["detail"],
        }
    ]
    assert "store_file_changed" in run(env, "verify").output


def test_missing_and_extra_store_files_are_named(
    env: dict[str, Path], recent_clips: list[Path]
) -> None:
    data = _tamper_setup(env, recent_clips)
    victim = env["state"] / "store" / data["recordings"][0]["store_path"]
    victim.unlink()
    (env["state"] / "store" / "sha256" / "zz").mkdir()
    (env["state"] / "store" / "sha256" / "zz" / "planted").write_bytes(b"x")
    kinds = {(p["kind"], p["where"]) for p in _verify_problems(env)}
    assert ("store_file_missing", f"store file {data['recordings'][0]['store_path']}") in kinds
    assert ("store_file_extra", "store file sha256/zz/planted") in kinds


def _rewrite_log(env: dict[str, Path], sql: str, *params: object) -> None:
    conn = sqlite3.connect(env["state"] / "catalog.sqlite")
    conn.executescript("DROP TRIGGER log_no_update; DROP TRIGGER log_no_delete;")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_flipped_byte_in_log_entry_is_named(env: dict[str, Path], recent_clips: list[Path]) -> None:
    """Invariant 3: a changed log entry fails verify and is named by position."""
    _tamper_setup(env, recent_clips)
    conn = sqlite3.connect(env["state"] / "catalog.sqlite")
    seq, raw = conn.execute(
        "SELECT seq, entry FROM log WHERE kind = 'recording.ingested' LIMIT 1"
    ).fetchone()
    conn.close()
    flipped = bytearray(raw)
    flipped[flipped.index(b'"size":') + 7] ^= 0x01  # one digit of the size
    _rewrite_log(env, "UPDATE log SET entry = ? WHERE seq = ?", bytes(flipped), seq)
    problems = _verify_problems(env)
    assert any(
        p["kind"] == "log_entry_changed" and p["where"] == f"log entry {seq}" for p in problems
    )


def test_deleted_and_reordered_log_entries_are_found(
    env: dict[str, Path], recent_clips: list[Path]
) -> None:
    _tamper_setup(env, recent_clips)
    _rewrite_log(env, "DELETE FROM log WHERE seq = 2")
    kinds = {p["kind"] for p in _verify_problems(env)}
    assert {"log_entry_missing", "log_chain_broken"} <= kinds


def test_truncated_log_tail_is_found(env: dict[str, Path], recent_clips: list[Path]) -> None:
    _tamper_setup(env, recent_clips)
    _rewrite_log(env, "DELETE FROM log WHERE seq = (SELECT MAX(seq) FROM log)")
    problems = _verify_problems(env)
    assert any(p["kind"] == "catalog_row_unlogged" and p["where"] == "session 1" for p in problems)


def test_changed_catalog_row_is_found(env: dict[str, Path], recent_clips: list[Path]) -> None:
    data = _tamper_setup(env, recent_clips)
    conn = sqlite3.connect(env["state"] / "catalog.sqlite")
    conn.executescript("DROP TRIGGER recordings_immutable;")
    conn.execute(
        "UPDATE recordings SET size = size + 1, recorded_start = '2020-01-01T00:00:00Z' "
        "WHERE id = 1"
    )
    conn.commit()
    conn.close()
    problems = _verify_problems(env)
    assert any(
        p["kind"] == "catalog_row_changed"
        and p["where"] == f"recording {data['recordings'][0]['id']}"
        and "size" in p["detail"]
        and "recorded_start" in p["detail"]
        for p in problems
    )


def test_forged_second_ingest_entry_is_found(
    env: dict[str, Path], recent_clips: list[Path]
) -> None:
    """Invariant 3: a well-chained extra entry (with its Merkle nodes) claiming another
    ingest of an existing recording is reported, although nothing was rewritten."""
    from datetime import UTC, datetime

    from dockd.catalog import Catalog
    from dockd.integrity.chain import next_entry

    _tamper_setup(env, recent_clips)
    cat = Catalog(env["state"] / "catalog.sqlite")
    seq, digest = cat.head()
    forged = next_entry(
        seq, digest, datetime.now(UTC), "recording.ingested", {"recording": 1, "sha256": "0" * 64}
    )
    with cat.transaction():
        cat.append(forged)
    cat.close()
    problems = _verify_problems(env)
    assert problems == [
        {
            "kind": "log_entry_unmatched",
            "where": f"log entry {forged.seq}",
            "detail": "records an ingest of recording 1, whose row refers to entry 4",
        }
    ]


def test_demo_succeeds_and_attributes_the_camera(tmp_path: Path) -> None:
    """`make demo` runs this: it must exit 0, with the camera assigned (no registry flag)."""
    state = tmp_path / "demo-state"
    result = CliRunner().invoke(cli, ["--state-dir", str(state), "demo", "--clips", "1"])
    assert result.exit_code == 0, result.output
    assert "verify: OK" in result.output
    listed = CliRunner().invoke(cli, ["--state-dir", str(state), "list", "--json"])
    rows = json.loads(listed.output)
    assert len(rows) == 2  # one clip and the corrupt one
    assert {r["officer"] for r in rows} == {"012345"} and {r["unit"] for r in rows} == {"一中队"}
    assert all("unassigned_device" not in r["flags"] for r in rows)
    assert sum("unreadable_media" in r["flags"] for r in rows) == 1
    # One name for the camera: the serial its file names carry, in the report and the list.
    assert {(r["device_serial"], r["device_number"]) for r in rows} == {("DSJ0001", "07")}
    assert "DSJ0001" in result.output and "DEMO-CAM" not in result.output
    table = CliRunner().invoke(cli, ["--state-dir", str(state), "list"]).output
    [header] = [line for line in table.splitlines() if "serial" in line]
    assert "no." in header


def test_log_export_right_after_an_ingest_and_a_tag(
    env: dict[str, Path], recent_clips: list[Path], tmp_path: Path
) -> None:
    """A writer signs what it added when it finishes, so an export or a proof of the
    newest entries never waits for the hourly checkpoint (`dockd checkpoint`)."""
    import subprocess
    import sys

    put(env["cam"], "DCIM/a.mp4", recent_clips[0])
    code, data = ingest(env)
    assert code == 0
    rec = data["recordings"][0]["id"]
    assert run(env, "tag", str(rec), "--cause", "占道经营").exit_code == 0
    out = tmp_path / "export"
    result = run(env, "log", "export", str(out))
    assert result.exit_code == 0, result.output
    assert "python3 verify.py" in result.output
    proofs = json.loads((out / "proofs.json").read_text())
    entries = (out / "entries.jsonl").read_bytes().splitlines()
    assert proofs["tree_size"] == len(entries)  # the tag, the last entry, is signed
    assert json.loads(entries[-1])["kind"] == "recording.tagged"
    checked = subprocess.run(
        [sys.executable, "verify.py"], cwd=out, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    proof = run(env, "proof", "inclusion", str(rec), "--json")
    assert proof.exit_code == 0, proof.output
