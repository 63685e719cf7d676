"""`dockd tag`, `case`, `hold`, `list` filters, `retention`, `sweep`, `restore` through click."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockd.cli import cli
from dockd.demo import gat947_name
from tests.conftest import NOW, put

ZONE = "Asia/Shanghai"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    cfg = tmp_path / "dockd.toml"
    cfg.write_text("[ingest]\nchange_retry_delay = 0\nmin_free_bytes = 0\n")
    return {"cfg": cfg, "state": tmp_path / "state", "cam": tmp_path / "cam"}


def run(env: dict[str, Path], *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(env["cfg"]), "--state-dir", str(env["state"]), *args]
    )


def ok(env: dict[str, Path], *args: str) -> Any:
    result = run(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def docked(env: dict[str, Path]) -> list[int]:
    """Four recordings: two officers' cameras, recorded early on 25 November."""
    for i, (officer, device) in enumerate(
        [("012345", "DSJ0001"), ("012345", "DSJ0001"), ("054321", "DSJ0002"), ("054321", "DSJ0002")]
    ):
        name = gat947_name(officer, device, NOW.replace(hour=1, minute=i), i + 1, ZONE)
        put(env["cam"] / device, f"DCIM/100MEDIA/{name}", f"clip {i}".encode())
    for device in ("DSJ0001", "DSJ0002"):
        result = run(env, "ingest", str(env["cam"] / device), "--serial", device, "--json")
        assert result.exit_code in (0, 3), result.output
    return [r["id"] for r in ok(env, "list")]


def test_tag_case_hold_and_list_filters(env: dict[str, Path], docked: list[int]) -> None:
    a, b, c, d = docked
    tagged = ok(env, "tag", str(a), str(b), "--cause", "占道经营", "--party", "张三",
                "--category", "evidence", "--note", "first look")  # fmt: skip
    assert tagged["recordings"] == [a, b] and tagged["tier_changed"] == 2
    ok(env, "case", "create", "C-2026-001", "--cause", "无照经营", "--party", "李四",
       "--category", "review")  # fmt: skip
    linked = ok(env, "case", "link", "C-2026-001", str(c))
    assert linked["linked"] == [c]
    held = ok(env, "hold", "set", "--case", "C-2026-001", "--reason", "court order 12")
    assert held["recordings"] == [c]

    def ids(*args: str) -> list[int]:
        return [r["id"] for r in ok(env, "list", *args)]

    assert ids("--cause", "占道") == [a, b]
    assert ids("--cause", "无照") == [c]  # the case's cause counts as the recording's
    assert ids("--party", "李四") == [c] and ids("--party", "张三") == [a, b]
    assert ids("--category", "review") == [c] and ids("--category", "evidence") == [a, b]
    assert ids("--case", "C-2026-001") == [c]
    assert ids("--tier", "permanent") == [a, b, c] and ids("--tier", "2y") == [d]
    assert ids("--device", "DSJ0002") == [c, d] and ids("--officer", "012345") == [a, b]
    assert ids("--unlabelled") == [d]
    assert ids("--from", "2026-11-25T01:02:00+08:00", "--to", "2026-11-25") == []
    assert ids("--from", "2026-11-25T09:02:00+08:00") == [c, d]
    assert ids("--state", "deleted") == []

    shown = ok(env, "case", "show", "C-2026-001")
    assert shown["state"] == "open" and [r["id"] for r in shown["recordings"]] == [c]
    assert shown["holds"][0]["reason"] == "court order 12" and shown["holds"][0]["active"]
    [hold] = ok(env, "hold", "list")
    assert hold["case"] == "C-2026-001" and hold["set_by"].startswith("root(")
    ok(env, "hold", "release", str(hold["hold"]), "--reason", "order lifted")
    assert ok(env, "hold", "list") == []
    assert ok(env, "hold", "list", "--all")[0]["release_reason"] == "order lifted"
    [row] = [r for r in ok(env, "list") if r["id"] == a]
    assert row["notes"][0]["text"] == "first look" and row["parties"] == ["张三"]

    human = run(env, "list", "--case", "C-2026-001")
    assert (
        human.exit_code == 0 and "C-2026-001" in human.output and "1 recording(s)" in human.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tag", "99", "--cause", "x"), "no recording 99"),
        (("tag", "1"), "nothing to tag"),
        (("tag", "1", "--remove-category", "evidence"), "needs --reason"),
        (("tag", "1", "--category", "secret"), "Invalid value for '--category'"),
        (("tag", "1", "--cause", "  "), "--cause: must not be empty"),
        (("case", "link", "NOPE", "1"), "no case 'NOPE'"),
        (("hold", "set", "--reason", "x"), "either --case NO or recording ids"),
        (("hold", "release", "7", "--reason", "x"), "no hold 7"),
        (("restore", "1", "--reason", "x"), "is not pending deletion"),
        (("sweep", "--as-of", "2999-01-01"), "is in the future"),
        (("list", "--from", "yesterday"), "--from: not a time"),
    ],
)
def test_bad_requests_exit_2_with_a_clear_message(
    env: dict[str, Path], docked: list[int], args: tuple[str, ...], message: str
) -> None:
    result = run(env, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_retention_plan_sweep_and_restore(env: dict[str, Path], docked: list[int]) -> None:
    a, b, c, d = docked
    ok(env, "tag", str(a), "--category", "obstruction")
    plan = ok(env, "retention", "plan", "--as-of", "2030-01-01")
    assert [p["recording"] for p in plan["mark_pending"]] == [b, c, d]
    assert plan["delete"] == [] and plan["policy_version"] == "r1/daily_enforcement"
    dry = ok(env, "sweep", "--dry-run", "--as-of", "2030-01-01")
    assert dry["dry_run"] and [p["recording"] for p in dry["plan"]["mark_pending"]] == [b, c, d]
    # Nothing is due yet (recorded today): a real sweep does nothing.
    swept = ok(env, "sweep")
    assert swept["marked_pending"] == [] and swept["deleted"] == []
    assert ok(env, "retention", "upcoming", "--days", "30") == []
    soon = ok(env, "retention", "upcoming", "--days", str(2 * 366))
    assert [r["id"] for r in soon] == [b, c, d]
    human = run(env, "retention", "plan", "--as-of", "2030-01-01")
    assert human.exit_code == 0 and "mark pending 3" in human.output
