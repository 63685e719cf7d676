"""`dockd gap list [--all]` end to end: which interruptions count (003 Art. 12, 002 Art. 13).

One camera's shift, docked once, with real MP4s whose names date them a few
hours before now (the CLI reads the real clock; the suite runs under faketime
too): a recording split into 35 s segments and cut off for 90 s, ordinary
pauses between incidents, two clips of one case 10 minutes apart and one 30
minutes later, and a missing sequence number. Only the cut, the case pause
and the hole count; `--all` adds the ordinary pauses.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import ffmpeg
import pytest

from dockd.clock import FixedClock, isoformat_utc, parse_utc
from dockd.config import load_config
from dockd.demo import gat947_name, make_clip
from dockd.devices.profiles import make_profile
from dockd.runner.session import run_session
from dockd.service import Service
from tests.cli.harness import CliEnv, write_config
from tests.conftest import put

SERIAL = "DSJ0007"
CASE = "2026-GAP"
# (sequence, seconds after the first start, length in s). The camera splits at 35 s.
SHIFT = [
    (1, 0, 35.0),  # one recording: 1, 2, 3 back to back ...
    (2, 35, 35.0),
    (3, 70, 35.0),
    (4, 195, 4.0),  # ... then 90 s of it missing: split_recording t3-4
    (5, 1800, 3.0),  # a new incident 27 min later: a pause
    (6, 2400, 3.0),  # 10 min after 5, both of one case: case_pause t5-6
    (7, 4200, 3.0),  # 30 min after 6, same case: more than 15 min, a pause
    (9, 4800, 3.0),  # 8 never arrived: sequence hole s7-9 (and a pause t7-9)
]


@dataclass
class Env(CliEnv):
    ids: dict[int, int]  # sequence -> recording id
    first: datetime

    def gap(self, kind: str, a: int, b: int) -> str:
        return f"{kind}{self.ids[a]}-{self.ids[b]}"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, now_utc: datetime) -> Env:
    tmp = tmp_path_factory.mktemp("gaps")
    config = write_config(tmp)
    state, cam = tmp / "state", tmp / "cam"
    # Recorded four hours ago (whole seconds, as names carry them): on time, any day.
    first = now_utc.replace(microsecond=0) - timedelta(hours=4)
    bases: dict[float, Path] = {}
    for seq, offset, seconds in SHIFT:
        start = first + timedelta(seconds=offset)
        if seconds not in bases:
            bases[seconds] = tmp / f"base{seconds:g}.mp4"
            make_clip(bases[seconds], start, seconds=seconds, size="160x120")
        # Each file its own bytes (another creation time), without encoding it again.
        clip = tmp / f"clip{seq}.mp4"
        (
            ffmpeg.input(str(bases[seconds]))
            .output(str(clip), c="copy", metadata=f"creation_time={isoformat_utc(start)}")
            .overwrite_output()
            .run(quiet=True)
        )
        put(cam, f"DCIM/{gat947_name('012345', SERIAL, start, seq, 'Asia/Shanghai')}", clip)
    clock = FixedClock(now_utc)
    with Service(load_config(config, state), clock) as service:
        profile = make_profile("gat947", service.config.profiles)
        report = run_session(service, cam, SERIAL, profile, wipe=True)
        assert not report.failed
        ids = {r.sequence or 0: r.id for r in service.recordings()}
        assert sorted(ids) == [s for s, _, _ in SHIFT]
        service.create_case(CASE, cause="dispute", actor="sgt")
        service.link_case(CASE, [ids[5], ids[6], ids[7]], actor="sgt")
        # An explanation written for the pause before 5 (as the old rule counted it)
        # stays attached to it.
        service.explain_gap(f"t{ids[4]}-{ids[5]}", "end of the first incident", actor="012345")
    shutil.rmtree(cam)
    return Env(config, state, ids, first)


@pytest.fixture
def env(template: Env, tmp_path: Path) -> Env:
    state = tmp_path / "state"
    shutil.copytree(template.state, state)
    return Env(template.config, state, template.ids, template.first)


def test_gap_list_shows_only_what_counts(env: Env) -> None:
    rows = env.json("gap", "list", "--json")
    assert [(g["gap"], g["reason"], g["counts"], g["explained"]) for g in rows] == [
        (env.gap("t", 3, 4), "split_recording", True, False),
        (env.gap("t", 5, 6), "case_pause", True, False),
        (env.gap("s", 7, 9), "sequence_hole", True, False),
    ]
    split, case, hole = rows
    assert 34 <= split["segment_seconds"] <= 36 and 89 <= split["seconds"] <= 91
    assert parse_utc(split["to"]) == env.first + timedelta(seconds=195)
    assert case["cases"] == [CASE] and 590 <= case["seconds"] <= 600
    assert hole["missing_sequence"] == [8, 8]
    text = env.ok("gap", "list").stdout
    assert "split recording (35 s segments)" in text and f"case pause ({CASE})" in text
    assert "pause (not counted)" not in text
    assert text.splitlines()[-1] == "3 interruption(s), 3 unexplained"


def test_gap_list_all_adds_the_ordinary_pauses(env: Env) -> None:
    rows = env.json("gap", "list", "--all", "--json")
    assert [(g["gap"], g["reason"], g["counts"]) for g in rows] == [
        (env.gap("t", 3, 4), "split_recording", True),
        (env.gap("t", 4, 5), "pause", False),
        (env.gap("t", 5, 6), "case_pause", True),
        (env.gap("t", 6, 7), "pause", False),
        (env.gap("t", 7, 9), "pause", False),
        (env.gap("s", 7, 9), "sequence_hole", True),
    ]
    explained = rows[1]
    assert explained["explained"] and explained["explanations"][0]["text"] == (
        "end of the first incident"
    )
    cells = [[c.strip() for c in line.strip("│┃ ").split("│")] for line in (
        env.ok("gap", "list", "--all").stdout.splitlines()
    )]  # fmt: skip
    pauses = [r for r in cells if r[0] in (env.gap("t", 6, 7), env.gap("t", 7, 9))]
    assert [(r[2], r[-1]) for r in pauses] == [("pause (not counted)", "-")] * 2
    last = env.ok("gap", "list", "--all").stdout.splitlines()[-1]
    assert last == "3 interruption(s), 3 unexplained; 3 ordinary pause(s), not counted"
    # --unexplained drops the explained pause; --device keeps to one camera.
    unexplained = env.json("gap", "list", "--all", "--unexplained", "--json")
    assert env.gap("t", 4, 5) not in [g["gap"] for g in unexplained] and len(unexplained) == 5
    assert env.json("gap", "list", "--all", "--device", "DSJ9999", "--json") == []
    assert env.ok("gap", "list", "--all", "--device", "DSJ9999").stdout.strip() == (
        "no interruptions or pauses"
    )


def test_explaining_and_the_compliance_report_count_only_interruptions(env: Env) -> None:
    env.ok("gap", "explain", env.gap("t", 3, 4), "--text", "battery died at the split")
    env.ok("gap", "explain", env.gap("t", 6, 7), "--text", "lunch")  # a pause: allowed
    assert [g["gap"] for g in env.json("gap", "list", "--unexplained", "--json")] == [
        env.gap("t", 5, 6), env.gap("s", 7, 9),
    ]  # fmt: skip
    total = env.json("report", "compliance", "--by", "device", "--json")["total"]
    assert (total["interruptions_explained"], total["interruptions_unexplained"]) == (1, 2)
    assert total["recordings"] == len(SHIFT) and total["late"] == 0
