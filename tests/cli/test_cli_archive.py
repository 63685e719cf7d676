"""`dockd export …` and `dockd verify-disc` end to end: real catalog, real xorriso images."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockd.cli import cli
from dockd.clock import isoformat_utc
from tests.conftest import camera_name, put, recent

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    cfg = tmp_path / "dockd.toml"
    cfg.write_text("[ingest]\nchange_retry_delay = 0\nmin_free_bytes = 0\n")
    return {"cfg": cfg, "state": tmp_path / "state", "cam": tmp_path / "cam",
            "out": tmp_path / "discs"}  # fmt: skip


def run(env: dict[str, Path], *args: str, login: str | None = None) -> Result:
    # Root with no daemon: the login (sudo's SUDO_USER) tells requester and approver apart.
    return CliRunner().invoke(
        cli,
        ["--config", str(env["cfg"]), "--state-dir", str(env["state"]), *args],
        env={"SUDO_USER": login},
    )


def approval(env: dict[str, Path]) -> tuple[str, str]:
    """An export request for every recording, asked by an archivist, approved by another
    person (four eyes): the `--request REQ` that export build takes (R6)."""
    ids = [str(r["id"]) for r in ok(env, "list")]
    asked = run(env, "request", "export", *ids, "--reason", "court copy, case C-1", "--json",
                login="archivist-wang")  # fmt: skip
    assert asked.exit_code == 0, asked.output
    request = str(json.loads(asked.output)["request"])
    done = run(env, "approve", request, "--note", "approved", login="supervisor-li")
    assert done.exit_code == 0, done.output
    return ("--request", request)


def ok(env: dict[str, Path], *args: str) -> Any:
    result = run(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def log_entries(env: dict[str, Path], kind: str) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(env["state"] / "catalog.sqlite") as db:
        rows = db.execute("SELECT entry FROM log WHERE kind = ? ORDER BY seq", [kind]).fetchall()
    return [json.loads(bytes(r[0]))["data"] for r in rows]


@pytest.fixture
def evidence(env: dict[str, Path], now_utc: datetime) -> list[int]:
    """Five recordings of ~300 KB made three hours ago, three of them evidence of case C-1."""
    for i in range(5):
        name = camera_name("012345", "DSJ0001", recent(now_utc, i), i + 1)
        put(env["cam"], f"DCIM/100MEDIA/{name}", bytes([i]) * (300_000 + i))
    result = run(env, "ingest", str(env["cam"]), "--serial", "DSJ0001", "--json")
    assert result.exit_code in (0, 3), result.output
    ids = [r["id"] for r in ok(env, "list")]
    ok(env, "case", "create", "C-1", "--cause", "阻碍执法", "--category", "obstruction")
    ok(env, "case", "link", "C-1", *map(str, ids[:3]))
    ok(env, "tag", str(ids[3]), "--category", "evidence")
    return ids


def test_plan_is_stable_and_keeps_the_case_together(
    env: dict[str, Path], evidence: list[int]
) -> None:
    # 1.3 MB usable per disc (after the 32 MiB reserve): the case (3 × 366,592 bytes
    # with sector rounding and metadata share) fits on one, not with the fourth.
    media = str((32 << 20) + 1_300_000)
    first = ok(env, "export", "plan", "--media", media)
    assert first == ok(env, "export", "plan", "--media", media)
    discs = [d["recordings"] for d in first["discs"]]
    assert sorted(i for d in discs for i in d) == evidence[:4]  # the fifth is routine (2y)
    assert evidence[:3] in discs  # the case on one disc
    copies = ok(env, "export", "plan", "--media", media, "--copies", "2")
    assert len(copies["discs"]) == 2 * len(discs)
    too_small = run(env, "export", "plan", "--media", str((32 << 20) + 200_000))
    assert too_small.exit_code == 2 and "use a larger medium: dvd" in too_small.output


def test_build_verify_burn_and_the_log(
    env: dict[str, Path], evidence: list[int], now_utc: datetime
) -> None:
    # Assigned after ingest: the recordings are re-attributed by a device.assigned
    # entry, which the disc must carry for verify.py to agree with its catalog.
    assigned = run(env, "device", "assign", "DSJ0001", "--officer", "054321", "--unit", "二中队",
                   "--from", isoformat_utc(now_utc - timedelta(days=1)))  # fmt: skip
    assert assigned.exit_code == 0, assigned.output
    built = ok(env, "export", "build", "--media", "dvd", "--copies", "2",
               "--out", str(env["out"]), *approval(env))  # fmt: skip
    labels = [d["label"] for d in built["discs"]]
    assert [x.split("_")[0] for x in labels] == ["E00001D001C1", "E00001D001C2"]
    assert sorted(p.name for p in env["out"].iterdir()) == [f"{x}.iso" for x in labels]
    [planned] = log_entries(env, "export.planned")
    # The approver and reason are those of the approved request it names.
    assert planned["approved_by"] == "root(0) via sudo by supervisor-li"
    assert planned["reason"].startswith("court") and planned["request"] == 1
    assert planned["discs"][0]["recordings"] == evidence[:4]
    made = {e["label"]: e for e in log_entries(env, "export.disc_built")}
    for d in built["discs"]:
        image = Path(d["image"])
        assert hashlib.sha256(image.read_bytes()).hexdigest() == d["sha256"]
        assert made[d["label"]]["image_sha256"] == d["sha256"]

    report = ok(env, "verify-disc", built["discs"][0]["image"])
    assert report["ok"] and report["label"] == labels[0]
    assert sorted(r["recording"] for r in report["recordings"]) == evidence[:4]
    assert ok(env, "verify-disc", "--no-catalog", built["discs"][1]["image"])["ok"]

    # The burn path through xorriso's pseudo-drive (a file): written, read back, logged.
    drive = f"stdio:{env['out'].parent / 'disc.img'}"
    burned = ok(env, "export", "burn", labels[0], "--images", str(env["out"]), "--drive", drive)
    assert burned["ok"] and burned["read_back_sha256"] == built["discs"][0]["sha256"]
    [entry] = log_entries(env, "export.disc_burned")
    assert entry["ok"] and entry["drive"] == drive
    rows = {d["label"]: d for e in ok(env, "export", "list") for d in e["discs"]}
    assert rows[labels[0]]["drive"] == drive and rows[labels[1]]["burned_at"] is None
    # The disc as read back (padded past the image) is still the disc that was built.
    assert ok(env, "verify-disc", drive.removeprefix("stdio:"))["ok"]
    no_burner = run(env, "export", "burn", labels[1], "--images", str(env["out"]))
    assert no_burner.exit_code == 2 and "no burner found" in no_burner.output
    assert ok(env, "verify")["ok"]


def test_verify_disc_checks_the_disc_against_the_catalog(
    env: dict[str, Path], evidence: list[int], tmp_path: Path, now_utc: datetime
) -> None:
    built = ok(env, "export", "build", "--media", "dvd", "--out", str(env["out"]), *approval(env))
    image = Path(built["discs"][0]["image"])
    # A byte changed in the image's unused system area: the bag still checks out,
    # but this is not the image the catalog recorded.
    changed = tmp_path / "changed.iso"
    data = bytearray(image.read_bytes())
    data[100] ^= 0xFF
    changed.write_bytes(bytes(data))
    report = run(env, "verify-disc", str(changed), "--json")
    assert report.exit_code == 1
    kinds = [p["kind"] for p in json.loads(report.output)["problems"]]
    assert kinds == ["catalog_image_changed"]

    # A disc this catalog never made.
    other_cfg = tmp_path / "other.toml"
    other_cfg.write_text(env["cfg"].read_text() + '[integrity]\norigin = "dockd/another-dock"\n')
    other = {**env, "cfg": other_cfg, "state": tmp_path / "other-state",
             "out": tmp_path / "other-discs"}  # fmt: skip
    for i in range(2):
        name = camera_name("054321", "DSJ0002", recent(now_utc, 60 + i), i + 1)
        put(tmp_path / "cam2", f"DCIM/100MEDIA/{name}", bytes([9, i]) * 1000)
    assert run(other, "ingest", str(tmp_path / "cam2"), "--serial", "DSJ0002").exit_code in (0, 3)
    built2 = ok(other, "export", "build", "--media", "dvd", "--tier", "any",
                "--out", str(other["out"]), *approval(other))  # fmt: skip
    foreign = run(env, "verify-disc", built2["discs"][0]["image"], "--json")
    assert foreign.exit_code == 1
    problems = json.loads(foreign.output)["problems"]
    # Signed by another dock's key (this catalog's keys are trusted), and unknown here.
    assert {p["kind"] for p in problems} == {"catalog_unknown_disc", "checkpoint_untrusted"}


def test_an_interrupted_build_resumes_and_never_leaves_a_complete_looking_image(
    env: dict[str, Path], evidence: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dockd.service.exports as service_module

    real = service_module.build_iso
    calls = {"n": 0}

    def flaky(bag_dir: Path, out_iso: Path, label: str, **kw: Any) -> Path:
        calls["n"] += 1
        if calls["n"] == 2:  # the second disc: die half-way through writing it
            out_iso.with_name(out_iso.name + ".part").write_bytes(b"\0" * 4096)
            raise KeyboardInterrupt
        return real(bag_dir, out_iso, label, **kw)

    monkeypatch.setattr(service_module, "build_iso", flaky)
    result = run(env, "export", "build", "--media", "dvd", "--copies", "2",
                 "--out", str(env["out"]), *approval(env))  # fmt: skip
    assert result.exit_code != 0
    isos = sorted(p.name for p in env["out"].glob("*.iso"))
    assert [x.split("_")[0] for x in isos] == ["E00001D001C1"]  # none for the other
    assert not list(env["out"].glob(".*staging"))
    assert len(log_entries(env, "export.disc_built")) == 1

    monkeypatch.setattr(service_module, "build_iso", real)
    resumed = ok(env, "export", "resume", "1", "--out", str(env["out"]))
    assert [d["built"] for d in resumed["discs"]] == [False, True]
    assert len(log_entries(env, "export.disc_built")) == 2
    for d in resumed["discs"]:
        assert ok(env, "verify-disc", d["image"])["ok"]


def test_empty_selection_and_missing_approval_are_usage_errors(
    env: dict[str, Path], evidence: list[int]
) -> None:
    empty = run(env, "export", "build", "--media", "dvd", "--case", "NOPE",
                "--out", str(env["out"]), *approval(env))  # fmt: skip
    assert empty.exit_code == 2 and "nothing to export" in empty.output
    unapproved = run(env, "export", "build", "--media", "dvd", "--out", str(env["out"]))
    assert unapproved.exit_code == 2 and "--request" in unapproved.output
    legacy = run(env, "export", "build", "--media", "dvd", "--out", str(env["out"]),
                 "--approved-by", "Supervisor Li", "--request", "1")  # fmt: skip
    assert legacy.exit_code == 2 and "dockd request export" in legacy.output
    # A request that is not approved (yet) is no approval; nor is one's own.
    asked = run(env, "request", "export", str(evidence[0]), "--reason", "x", "--json",
                login="wang")  # fmt: skip
    pending = str(json.loads(asked.output)["request"])
    refused = run(env, "export", "build", "--media", "dvd", "--out", str(env["out"]),
                  "--request", pending, login="wang")  # fmt: skip
    assert refused.exit_code == 5 and "is pending, not approved" in refused.output
    own = run(env, "approve", pending, "--note", "mine", login="wang")
    assert own.exit_code == 5 and "four eyes" in own.output
    ok(env, "export", "build", "--media", "dvd", "--out", str(env["out"]), *approval(env))
    again = run(env, "export", "build", "--media", "dvd", "--not-exported",
                "--out", str(env["out"]), *approval(env))  # fmt: skip
    assert again.exit_code == 2 and "nothing to export" in again.output


def test_build_from_a_saved_plan_refuses_a_stale_one(
    env: dict[str, Path], evidence: list[int], tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(run(env, "export", "plan", "--media", "dvd", "--json").output)
    ok(env, "tag", str(evidence[4]), "--category", "incident")  # the selection grows
    stale = run(env, "export", "build", "--plan", str(plan_file), "--out", str(env["out"]),
                *approval(env))  # fmt: skip
    assert stale.exit_code == 2 and "the catalog changed since this plan" in stale.output
    plan_file.write_text(run(env, "export", "plan", "--media", "dvd", "--json").output)
    built = ok(env, "export", "build", "--plan", str(plan_file), "--out", str(env["out"]),
               *approval(env))  # fmt: skip
    [planned] = log_entries(env, "export.planned")
    assert planned["discs"][0]["recordings"] == evidence and len(built["discs"]) == 1
    assert run(env, "export", "build", "--out", str(env["out"]), *approval(env)).exit_code == 2


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("UPDATE exports SET approved_by = 'nobody'", "export_changed"),
        ("UPDATE disc_items SET recording_id = 5 WHERE recording_id = 4", "disc_contents_changed"),
        ("UPDATE discs SET image_sha256 = 'ab' || substr(image_sha256, 3)", "disc_image_changed"),
        ("UPDATE discs SET burned_at = '2030-01-01T00:00:00Z', burn_log_seq = 1",
         "disc_burn_unlogged"),
    ],
)  # fmt: skip
def test_verify_finds_a_rewritten_record_of_copies(
    env: dict[str, Path], evidence: list[int], sql: str, kind: str
) -> None:
    import sqlite3

    ok(env, "export", "build", "--media", "dvd", "--out", str(env["out"]), *approval(env))
    assert ok(env, "verify")["ok"]
    with sqlite3.connect(env["state"] / "catalog.sqlite") as db:
        db.execute(sql)
    result = run(env, "verify", "--json")
    assert result.exit_code == 1
    assert [p["kind"] for p in json.loads(result.output)["problems"]] == [kind]
