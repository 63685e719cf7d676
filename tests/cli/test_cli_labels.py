"""`dockd tag`, `case`, `hold`, `list` filters, `retention`, `sweep`, `restore` through click."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from dockd.cli import cli
from dockd.clock import isoformat_utc
from tests.conftest import ZONE, camera_name, put, recent


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
def docked(env: dict[str, Path], now_utc: datetime) -> list[int]:
    """Four recordings: two officers' cameras, recorded a minute apart three hours ago."""
    for i, (officer, device) in enumerate(
        [("012345", "DSJ0001"), ("012345", "DSJ0001"), ("054321", "DSJ0002"), ("054321", "DSJ0002")]
    ):
        name = camera_name(officer, device, recent(now_utc, i), i + 1)
        put(env["cam"] / device, f"DCIM/100MEDIA/{name}", f"clip {i}".encode())
    for device in ("DSJ0001", "DSJ0002"):
        result = run(env, "ingest", str(env["cam"] / device), "--serial", device, "--json")
        assert result.exit_code in (0, 3), result.output
    return [r["id"] for r in ok(env, "list")]


def test_tag_case_hold_and_list_filters(
    env: dict[str, Path], docked: list[int], now_utc: datetime
) -> None:
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
    # Times with an offset are read with it: c's start in camera time finds c and d,
    # the same digits taken as UTC+8 (8 h earlier) find nothing before d's hour.
    third = recent(now_utc, 2)
    local = third.astimezone(ZoneInfo(ZONE))
    wrong = f"{third:%Y-%m-%dT%H:%M:%S}+08:00"
    assert ids("--from", wrong, "--to", isoformat_utc(third - timedelta(hours=1))) == []
    assert ids("--from", local.isoformat()) == [c, d]
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


def test_list_and_show_give_a_case_s_labels_and_say_where_they_came_from(
    env: dict[str, Path], docked: list[int]
) -> None:
    """R2: the case's cause and parties are the recording's labels too (what `--party`
    finds), so list and show print them, marked as the case's."""
    _, _, c, d = docked
    ok(env, "tag", str(c), "--party", "王五", "--cause", "现场检查")
    ok(env, "case", "create", "C-7", "--cause", "无照经营", "--party", "李四", "--party", "王五",
       "--category", "review")  # fmt: skip
    ok(env, "case", "link", "C-7", str(c))
    [row] = ok(env, "list", "--party", "李四")
    assert row["id"] == c and row["parties"] == ["王五"]  # the row's own labels, as stored
    assert row["labels"] == {
        "cases": ["C-7"],
        "causes": [
            {"text": "现场检查", "source": "own"},
            {"text": "无照经营", "source": "case C-7"},
        ],
        # 王五 is the recording's own as well: unlinking the case would not remove it.
        "parties": [{"text": "王五", "source": "own"}, {"text": "李四", "source": "case C-7"}],
        "categories": [{"text": "review", "source": "case C-7"}],
    }
    shown = ok(env, "show", str(c))
    assert shown["labels"] == row["labels"]
    assert ok(env, "show", str(d))["labels"] == {
        "cases": [], "causes": [], "parties": [], "categories": [],
    }  # fmt: skip

    table = run(env, "list", "--party", "李四")
    assert table.exit_code == 0

    def folded(bar: str) -> list[str]:
        """A table's header (┃) or its one row (│), each column's lines joined again."""
        lines = [
            [c.strip() for c in line.split(bar)[1:-1]]
            for line in table.output.splitlines()
            if bar in line
        ]
        return [" ".join(part for part in column if part) for column in zip(*lines, strict=True)]

    columns = dict(zip(folded("┃"), folded("│"), strict=True))
    assert columns["serial"] == "DSJ0002" and columns["case"] == "C-7"
    assert columns["parties"] == "王五, 李四 (case C-7)"
    assert columns["cause"] == "现场检查, 无照经营 (case C-7)"
    human = run(env, "show", str(c))
    assert human.exit_code == 0
    [parties] = [line for line in human.output.splitlines() if "effective parties" in line]
    assert "王五" in parties and "李四 (case C-7)" in parties


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tag", "99", "--cause", "x"), "no recording 99"),
        (("tag", "1"), "nothing to tag"),
        (
            ("tag", "1", "--remove-category", "evidence"),
            "needs a reason (it may shorten retention) (--reason)",
        ),
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


def test_retention_plan_sweep_and_restore(
    env: dict[str, Path], docked: list[int], now_utc: datetime
) -> None:
    a, b, c, d = docked
    # Three years on, the 2-year footage has expired (the preset: daily enforcement).
    later = (now_utc + timedelta(days=3 * 365)).date().isoformat()
    ok(env, "tag", str(a), "--category", "obstruction")
    plan = ok(env, "retention", "plan", "--as-of", later)
    assert [p["recording"] for p in plan["mark_pending"]] == [b, c, d]
    assert plan["delete"] == [] and plan["policy_version"] == "r1/daily_enforcement"
    dry = ok(env, "sweep", "--dry-run", "--as-of", later)
    assert dry["dry_run"] and [p["recording"] for p in dry["plan"]["mark_pending"]] == [b, c, d]
    # Nothing is due yet (recorded today): a real sweep does nothing.
    swept = ok(env, "sweep")
    assert swept["marked_pending"] == [] and swept["deleted"] == []
    assert ok(env, "retention", "upcoming", "--days", "30") == []
    soon = ok(env, "retention", "upcoming", "--days", str(2 * 366))
    assert [r["id"] for r in soon] == [b, c, d]
    human = run(env, "retention", "plan", "--as-of", later)
    assert human.exit_code == 0 and "mark pending 3" in human.output
