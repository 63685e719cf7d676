"""`dockd report compliance|spot-check` and `dockd gap list|explain`, end to end (R1, R7, R8).

A real state directory is built once with the real Service: cameras docked
by `run_session` from folders standing in for them, with a FixedClock, so
that there are late and on-time recordings, a time gap and a sequence hole
(one explained), unassigned and unlabelled recordings, an overdue device
and one whose last docking was cut short. Each test works on its own copy.
No daemon listens on the configured runtime directory, so changes are direct.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.cli import cli
from dockd.cli.common import local_actor
from dockd.cli.reports import gap, report
from dockd.clock import FixedClock, parse_utc
from dockd.config import load_config
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import LogEntry
from dockd.runner.session import run_session
from dockd.service import Service
from tests.cli.harness import CliEnv, write_config
from tests.conftest import put

# Until dockd/cli/main.py registers them itself.
for _group in (report, gap):
    if _group.name not in cli.commands:
        cli.add_command(_group)

AS_OF = "2026-12-10T12:00:00Z"


@dataclass
class Env(CliEnv):
    tmp: Path
    # (serial, sequence) -> recording id
    ids: dict[tuple[str, int], int]

    def entries(self, kind: str) -> list[LogEntry]:
        with self.service() as service:
            parsed = [LogEntry.from_bytes(row.raw) for row in service.catalog.log_rows()]
        return [e for e in parsed if e.kind == kind]

    def hours(self, keep: Callable[[tuple[str, int]], bool]) -> str:
        """The hours of the recordings whose (serial, sequence) `keep` accepts, as shown."""
        with self.service() as service:
            recs = service.recordings()
        total = sum(
            (
                parse_utc(r.recorded_end) - parse_utc(r.recorded_start)
                for r in recs
                if keep((r.device_serial, r.sequence or 0))
            ),
            timedelta(0),
        )
        return f"{total.total_seconds() / 3600:.2f}"


def _dock(
    service: Service,
    cam: Path,
    serial: str,
    files: dict[str, Path],
    *,
    stop: bool = False,
) -> None:
    shutil.rmtree(cam, ignore_errors=True)
    for name, clip in files.items():
        put(cam, f"DCIM/{name}", clip)
    profile = make_profile("gat947", service.config.profiles)
    run_session(service, cam, serial, profile, wipe=True, should_stop=lambda: stop)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, clip_bank: list[Path]) -> Env:
    tmp = tmp_path_factory.mktemp("reports")
    config = write_config(tmp)
    state = tmp / "state"
    cam = tmp / "cam"
    clock = FixedClock(datetime(2026, 11, 20, 0, 0, tzinfo=UTC))
    with Service(load_config(config, state), clock) as service:
        service.assign_device(
            "DSJ0001", officer="012345", unit="Patrol 3", device_number="BWC-01",
            valid_from=datetime(2026, 11, 1, tzinfo=UTC), actor="admin",
        )  # fmt: skip
        # Handed out only on 2026-12-10: rule (a) counts from then, not from its last docking.
        service.assign_device(
            "DSJ0004", officer="077777", unit="Traffic", device_number="BWC-04",
            valid_from=datetime(2026, 12, 10, tzinfo=UTC), actor="admin",
        )  # fmt: skip
        # Docked on time (names are camera time, UTC+8): nobody is assigned.
        clock.current = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        _dock(service, cam, "DSJ0002", {
            "054321_DSJ0002_20261125100000_0001.MP4": clip_bank[1],  # 02:00:00Z
            "054321_DSJ0002_20261125100030_0002.MP4": clip_bank[2],  # 02:00:30Z
        })  # fmt: skip
        _dock(service, cam, "DSJ0003", {"DSJ0003_20261125110000_0001.MP4": clip_bank[3]})
        # Docked 35 h after recording: late. 0001 -> 0002 pauses ~5 min (a time
        # gap); 0002 -> 0005 skips 3 and 4 (a sequence hole) after a ~58 s pause.
        clock.current = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
        _dock(service, cam, "DSJ0001", {
            "012345_DSJ0001_20261125090000_0001.MP4": clip_bank[0],  # 01:00:00Z
            "012345_DSJ0001_20261125090500_0002.MP4": clip_bank[4],  # 01:05:00Z
            "012345_DSJ0001_20261125090600_0005.MP4": clip_bank[5],  # 01:06:00Z
        })  # fmt: skip
        # A docking that stopped before it took anything.
        clock.current = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
        _dock(
            service, cam, "DSJ0004", {"077777_DSJ0004_20261127070000_0001.MP4": clip_bank[0]},
            stop=True,
        )  # fmt: skip
        ids = {(r.device_serial, r.sequence or 0): r.id for r in service.recordings()}
        assert len(ids) == 6
        # Labels: a cause on one, a case on another; the rest stay unlabelled.
        clock.current = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
        service.tag([ids["DSJ0002", 1]], cause="traffic stop", actor="sgt")
        service.create_case("2026-001", cause="theft", actor="sgt")
        # Both sides of the ~5 min pause are the case's footage: an interruption
        # to explain (a pause within one case, under retention.gap_max_seconds).
        service.link_case("2026-001", [ids["DSJ0001", 1], ids["DSJ0001", 2]], actor="sgt")
        t_gap = f"t{ids['DSJ0001', 1]}-{ids['DSJ0001', 2]}"
        assert {g.id for g in service.interruptions()} == {
            t_gap, f"s{ids['DSJ0001', 2]}-{ids['DSJ0001', 5]}",
        }  # fmt: skip
        service.explain_gap(t_gap, "battery swap", actor="012345")
    return Env(config, state, tmp, ids)


@pytest.fixture
def env(template: Env, tmp_path: Path) -> Env:
    state = tmp_path / "state"
    shutil.copytree(template.state, state)
    return Env(template.config, state, template.tmp, template.ids)


def _counts(**kw: Any) -> dict[str, Any]:
    zero = {
        "recordings": 0, "hours": 0.0, "on_time": 0, "late": 0, "interruptions_explained": 0,
        "interruptions_unexplained": 0, "unassigned": 0, "unlabelled": 0,
    }  # fmt: skip
    return zero | kw


def _cells(text: str) -> list[list[str]]:
    """The cells of each line of a rich table."""
    return [[c.strip() for c in line.strip("│┃ ").split("│")] for line in text.splitlines()]


def _csv(text: str) -> list[list[str]]:
    """A compliance CSV as Excel gets it: UTF-8 after a byte-order mark."""
    assert text.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def _without_seconds(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k != "seconds"} for g in groups]


# -- report compliance -----------------------------------------------------------------------


def test_compliance_json_by_unit(env: Env) -> None:
    data = env.json("report", "compliance", "--as-of", AS_OF, "--format", "json")
    # Whole seconds beside the hours, rounded so that the groups add up to TOTAL.
    assert sum(g["seconds"] for g in data["groups"]) == data["total"]["seconds"] > 0
    data["groups"] = _without_seconds(data["groups"])
    [data["total"]] = _without_seconds([data["total"]])
    assert (data["by"], data["from"], data["to"], data["as_of"]) == ("unit", None, None, AS_OF)
    assert data["label_after_days"] == 7.0
    patrol = float(env.hours(lambda k: k[0] == "DSJ0001"))
    nobody = float(env.hours(lambda k: k[0] != "DSJ0001"))
    assert data["groups"] == [
        _counts(group="Patrol 3", recordings=3, hours=patrol, late=3,
                interruptions_explained=1, interruptions_unexplained=1, unlabelled=1),
        _counts(group="(none)", recordings=3, hours=nobody, on_time=3, unassigned=3,
                unlabelled=2),
    ]  # fmt: skip
    assert data["total"] == _counts(
        group="TOTAL", recordings=6, hours=float(env.hours(lambda k: True)), on_time=3, late=3,
        interruptions_explained=1, interruptions_unexplained=1, unassigned=3, unlabelled=3,
    )  # fmt: skip
    assert data["overdue_devices"] == [
        {
            "serial": "DSJ0001", "device_number": "BWC-01", "officer": "012345",
            "unit": "Patrol 3", "last_docked": "2026-11-26T12:00:00Z", "reasons": ["not_docked"],
            "since": "2026-11-26T12:00:00Z", "hours_since": 336.0, "session": None,
        },
        {
            "serial": "DSJ0004", "device_number": "BWC-04", "officer": "077777",
            "unit": "Traffic", "last_docked": "2026-11-27T08:00:00Z",
            "reasons": ["incomplete_docking"], "since": "2026-12-10T00:00:00Z",
            "hours_since": 12.0,
            "session": {
                "id": 4, "state": "stopped", "started_at": "2026-11-27T08:00:00Z",
                "ended_at": "2026-11-27T08:00:00Z", "failed": 0, "wipe_failed": 0,
                "failed_files": [],
            },
        },
    ]  # fmt: skip
    again = env.json("report", "compliance", "--as-of", AS_OF, "--json")
    again["groups"] = _without_seconds(again["groups"])
    [again["total"]] = _without_seconds([again["total"]])
    assert again == data


def test_compliance_by_officer_and_device_csv(env: Env) -> None:
    header = [
        "recordings", "hours", "seconds", "on_time", "late", "interruptions_explained",
        "interruptions_unexplained", "unassigned", "unlabelled", "period_from", "period_to",
        "as_of", "label_after_days",
    ]  # fmt: skip
    h1 = env.hours(lambda k: k[0] == "DSJ0001")
    h2 = env.hours(lambda k: k[0] == "DSJ0002")
    h3 = env.hours(lambda k: k[0] == "DSJ0003")
    total = env.hours(lambda k: True)
    # Every row says which period and instant it counts (empty: unbounded).
    when = ["", "", AS_OF, "7"]
    text = env.ok("report", "compliance", "--as-of", AS_OF, "--by", "officer", "--format", "csv")
    rows = _csv(text.stdout)
    assert rows[0] == ["officer", *header]
    seconds = [int(r[3]) for r in rows[1:]]
    assert sum(seconds[:-1]) == seconds[-1]  # a spreadsheet's SUM is the TOTAL row
    assert [r[:3] + r[4:] for r in rows[1:]] == [
        ["012345", "3", h1, "0", "3", "1", "1", "0", "1", *when],
        ["054321", "2", h2, "2", "0", "0", "0", "2", "1", *when],
        ["(none)", "1", h3, "1", "0", "0", "0", "1", "1", *when],
        ["TOTAL", "6", total, "3", "3", "1", "1", "3", "3", *when],
    ]
    text = env.ok("report", "compliance", "--as-of", AS_OF, "--by", "device", "--format", "csv")
    assert [r[:3] + r[4:10] for r in _csv(text.stdout)[1:]] == [
        ["DSJ0001", "3", h1, "0", "3", "1", "1", "0", "1"],
        ["DSJ0002", "2", h2, "2", "0", "0", "0", "2", "1"],
        ["DSJ0003", "1", h3, "1", "0", "0", "0", "1", "1"],
        ["TOTAL", "6", total, "3", "3", "1", "1", "3", "3"],
    ]


def test_compliance_table(env: Env) -> None:
    text = env.ok("report", "compliance", "--as-of", AS_OF).stdout
    cells = _cells(text)
    h1, rest = env.hours(lambda k: k[0] == "DSJ0001"), env.hours(lambda k: k[0] != "DSJ0001")
    total = env.hours(lambda k: True)
    assert ["Patrol 3", "3", h1, "0", "3", "1", "1", "0", "1"] in cells
    assert ["(none)", "3", rest, "3", "0", "0", "0", "3", "2"] in cells
    assert ["TOTAL", "6", total, "3", "3", "1", "1", "3", "3"] in cells
    assert "compliance by unit" in text and "as of 2026-12-10T12:00:00Z" in text
    # The overdue section: why each device is listed.
    assert "devices overdue for docking" in text
    assert any(row[:2] == ["DSJ0001", "BWC-01"] and "not docked for 336.0 h" in row[-1]
               for row in cells)  # fmt: skip
    assert any(row[:2] == ["DSJ0004", "BWC-04"] and "docking 4 ended stopped" in row[-1]
               for row in cells)  # fmt: skip


def test_compliance_earlier_as_of_and_period(env: Env) -> None:
    # A week after the first docking: only DSJ0002/3 (docked 2026-11-25 09:00) are
    # unlabelled yet; DSJ0004 is not handed out yet, DSJ0001 is overdue.
    data = env.json("report", "compliance", "--as-of", "2026-12-02 10:00", "--json")
    assert data["as_of"] == "2026-12-02T10:00:00Z"
    assert [(g["group"], g["unlabelled"]) for g in data["groups"]] == [
        ("Patrol 3", 0), ("(none)", 2),
    ]  # fmt: skip
    assert [(d["serial"], d["reasons"]) for d in data["overdue_devices"]] == [
        ("DSJ0001", ["not_docked"])
    ]
    # The period selects by recording start; an offset is honoured, --to is exclusive.
    # From 01:03Z: DSJ0001's 0002 and 0005 only; both interruptions end in them.
    for start in ("2026-11-25T01:03:00Z", "2026-11-25T09:03:00+08:00"):
        data = env.json(
            "report", "compliance", "--as-of", AS_OF, "--from", start, "--to", "2026-11-25T02:00",
            "--json",
        )  # fmt: skip
        assert data["from"] == "2026-11-25T01:03:00Z" and data["to"] == "2026-11-25T02:00:00Z"
        assert [(g["group"], g["recordings"]) for g in data["groups"]] == [("Patrol 3", 2)]
        assert data["total"]["interruptions_explained"] == 1
        assert data["total"]["interruptions_unexplained"] == 1
    # From 01:05:30Z the recording after the time gap is out: the gap is not counted.
    data = env.json(
        "report", "compliance", "--as-of", AS_OF, "--from", "2026-11-25T01:05:30Z", "--json"
    )
    assert data["total"]["recordings"] == 4
    assert data["total"]["interruptions_explained"] == 0
    assert data["total"]["interruptions_unexplained"] == 1
    # A date is midnight UTC.
    data = env.json("report", "compliance", "--from", "2026-11-26", "--json")
    assert data["from"] == "2026-11-26T00:00:00Z" and data["groups"] == []
    assert data["total"]["recordings"] == 0


def test_compliance_usage_errors(env: Env) -> None:
    result = env.run("report", "compliance", "--from", "2026-12-01", "--to", "2026-11-01")
    assert result.exit_code == 2
    assert "--to (2026-11-01T00:00:00Z) must be after --from (2026-12-01T00:00:00Z)" in (
        result.stderr
    )
    result = env.run("report", "compliance", "--from", "last tuesday")
    assert result.exit_code == 2 and "--from: not a time: 'last tuesday'" in result.stderr
    result = env.run("report", "compliance", "--by", "squad")
    assert result.exit_code == 2


# -- report spot-check -----------------------------------------------------------------------


def test_spot_check_is_reproducible_and_logged(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    first = env.json("report", "spot-check", "--sample", "2", "--seed", "7", "--json")
    again = env.json("report", "spot-check", "--sample", "2", "--seed", "7", "--json")
    everyone = sorted(env.ids.values())
    expected = sorted(random.Random(7).sample(everyone, 2))
    assert [r["id"] for r in first["recordings"]] == expected
    assert [r["id"] for r in again["recordings"]] == expected
    assert (first["seed"], first["population"]) == (7, 6)
    assert again["log_entry"] == first["log_entry"] + 1
    entries = env.entries("report.spot_check")
    assert [e.seq for e in entries] == [first["log_entry"], again["log_entry"]]
    data = entries[0].data
    assert {k: data[k] for k in ("seed", "sample", "population", "recordings", "filters")} == {
        "seed": 7, "sample": 2, "population": 6, "recordings": expected, "filters": {},
    }  # fmt: skip
    assert data["by"] == local_actor()


def test_spot_check_with_filters_and_text_output(env: Env) -> None:
    patrol = sorted(v for (serial, _), v in env.ids.items() if serial == "DSJ0001")
    result = env.ok("report", "spot-check", "--sample", "5", "--seed", "42", "--unit", "Patrol 3")
    # More asked than there are: all of them, in id order.
    assert result.stdout.splitlines()[0] == (
        "spot check: drew 3 of 3 recording(s) (unit=Patrol 3) with seed 42 "
        f"(repeat with --seed 42); log entry {env.entries('report.spot_check')[0].seq}"
    )
    rows = [c for c in _cells(result.stdout) if c and c[0].isdigit()]
    assert [int(c[0]) for c in rows] == patrol
    assert all(c[2:5] == ["DSJ0001", "BWC-01", "012345"] for c in rows)
    entry = env.entries("report.spot_check")[0]
    assert entry.data["filters"] == {"unit": "Patrol 3"}
    assert entry.data["recordings"] == patrol
    # The name's officer counts for unassigned cameras; --from/--to as everywhere.
    data = env.json(
        "report", "spot-check", "--sample", "1", "--officer", "054321",
        "--from", "2026-11-25T02:00:10Z", "--to", "2026-11-26", "--json",
    )  # fmt: skip
    assert data["population"] == 1
    assert [r["id"] for r in data["recordings"]] == [env.ids["DSJ0002", 2]]
    assert env.entries("report.spot_check")[1].data["filters"] == {
        "officer": "054321", "start": "2026-11-25T02:00:10Z", "end": "2026-11-26T00:00:00Z",
    }  # fmt: skip


def test_spot_check_random_seed_is_printed_and_repeatable(env: Env) -> None:
    first = env.json("report", "spot-check", "--sample", "3", "--json")
    again = env.json(
        "report", "spot-check", "--sample", "3", "--seed", str(first["seed"]), "--json"
    )
    assert [r["id"] for r in again["recordings"]] == [r["id"] for r in first["recordings"]]


def test_spot_check_usage(env: Env) -> None:
    assert env.run("report", "spot-check").exit_code == 2
    assert env.run("report", "spot-check", "--sample", "0").exit_code == 2
    result = env.run("report", "spot-check", "--sample", "1", "--unit", "Nobody")
    assert result.exit_code == 2 and "no recordings to draw from" in result.stderr
    assert env.entries("report.spot_check") == []


# -- gap list / explain ----------------------------------------------------------------------


def test_gap_list(env: Env) -> None:
    a, b, c = (env.ids["DSJ0001", s] for s in (1, 2, 5))
    rows = env.json("gap", "list", "--json")
    assert [(g["gap"], g["kind"], g["reason"], g["explained"]) for g in rows] == [
        (f"t{a}-{b}", "time_gap", "case_pause", True),
        (f"s{b}-{c}", "sequence_hole", "sequence_hole", False),
    ]  # fmt: skip
    assert [g["counts"] for g in rows] == [True, True]
    t_gap, s_gap = rows
    with env.service() as service:
        first = service.recording(a)
    assert first is not None
    assert (t_gap["from"], t_gap["to"]) == (first.recorded_end, "2026-11-25T01:05:00Z")
    assert 290 < t_gap["seconds"] < 300 and t_gap["missing_sequence"] is None
    assert t_gap["explanations"] == [
        {"text": "battery swap", "by": "012345", "at": "2026-11-28T08:00:00Z",
         "log_entry": env.entries("gap.explained")[0].seq},
    ]  # fmt: skip
    assert s_gap["missing_sequence"] == [3, 4] and s_gap["explanations"] == []
    assert s_gap["device_serial"] == "DSJ0001" and s_gap["before"] == b and s_gap["after"] == c
    assert [g["gap"] for g in env.json("gap", "list", "--unexplained", "--json")] == [f"s{b}-{c}"]
    assert env.json("gap", "list", "--device", "DSJ0002", "--json") == []
    text = env.ok("gap", "list").stdout
    cells = _cells(text)
    assert any(r[0] == f"t{a}-{b}" and r[-1].startswith("battery swap (012345") for r in cells)
    assert any(r[0] == f"s{b}-{c}" and r[6] == "3-4" and r[-1] == "UNEXPLAINED" for r in cells)
    assert text.splitlines()[-1] == "2 interruption(s), 1 unexplained"
    assert env.ok("gap", "list", "--device", "DSJ0003").stdout.strip() == "no interruptions"


def test_gap_explain(env: Env) -> None:
    b, c = env.ids["DSJ0001", 2], env.ids["DSJ0001", 5]
    result = env.ok("gap", "explain", f" s{b}-{c} ", "--text", "storage full, swapped card")
    entry = env.entries("gap.explained")[-1]
    assert result.stdout.strip() == f"interruption s{b}-{c} explained (log entry {entry.seq})"
    assert entry.data["gap"] == f"s{b}-{c}" and entry.data["device_serial"] == "DSJ0001"
    assert entry.data["text"] == "storage full, swapped card"
    assert env.json("gap", "list", "--unexplained", "--json") == []
    data = env.json("gap", "explain", f"s{b}-{c}", "--text", "and a second note", "--json")
    assert data == {"gap": f"s{b}-{c}", "log_entry": entry.seq + 1}
    listed = {g["gap"]: g for g in env.json("gap", "list", "--json")}
    assert [e["text"] for e in listed[f"s{b}-{c}"]["explanations"]] == [
        "storage full, swapped card", "and a second note",
    ]  # fmt: skip
    report = env.json("report", "compliance", "--as-of", AS_OF, "--json")
    assert report["total"]["interruptions_explained"] == 2
    assert report["total"]["interruptions_unexplained"] == 0


def test_gap_explain_unknown_or_malformed_id(env: Env) -> None:
    a, c = env.ids["DSJ0001", 1], env.ids["DSJ0001", 5]
    before = len(env.entries("gap.explained"))
    for gap_id in (f"t{a}-{c}", "t999-1000", f"s{c}-{a}"):
        result = env.run("gap", "explain", gap_id, "--text", "x")
        assert result.exit_code == 2, result.output
        assert f"no interruption '{gap_id}' (dockd gap list shows them)" in result.stderr
    result = env.run("gap", "explain", "gap-1", "--text", "x")
    assert result.exit_code == 2 and "not a gap id: 'gap-1'" in result.stderr
    assert env.run("gap", "explain", f"t{a}-{c}").exit_code == 2  # --text is required
    assert len(env.entries("gap.explained")) == before
