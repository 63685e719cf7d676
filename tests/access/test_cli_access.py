"""The access commands as people type them: request, approve, copy, custody (text, CSV,
JSON, PDF read back with pdftotext), confidential marks, scoped log export.

Root with no daemon, two people told apart by their login (sudo's SUDO_USER),
as on a dock where the archivist and the supervisor both use sudo.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockd.cli import cli
from tests.cli.harness import write_config
from tests.conftest import camera_name, put, recent

OTHER_PARTY = "王五"
REPO = Path(__file__).resolve().parents[2]


def run(env: dict[str, Path], *args: str, login: str | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["--config", str(env["cfg"]), "--state-dir", str(env["state"]), *args],
        env={"SUDO_USER": login, "DOCKD_STATE_DIR": None},
    )


def ok(env: dict[str, Path], *args: str, login: str | None = None) -> Any:
    result = run(env, *args, "--json", login=login)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def env(tmp_path: Path, now_utc: datetime) -> dict[str, Path]:
    """Three recordings: 1 and 2 of case A-1 (party 李四), 3 of case B-2 (party 王五)."""
    env = {"cfg": write_config(tmp_path), "state": tmp_path / "state", "tmp": tmp_path}
    cam = tmp_path / "cam"
    for i in range(3):
        name = camera_name("012345", "DSJ0001", recent(now_utc, i), i + 1)
        put(cam, f"DCIM/100MEDIA/{name}", bytes([i + 1]) * 5000)
    ingested = run(env, "ingest", str(cam), "--serial", "DSJ0001", "--json")
    assert ingested.exit_code in (0, 3), ingested.output
    ok(env, "case", "create", "A-1", "--cause", "无照经营", "--party", "李四")
    ok(env, "case", "link", "A-1", "1", "2")
    ok(env, "case", "create", "B-2", "--cause", "另案纠纷", "--party", OTHER_PARTY)
    ok(env, "case", "link", "B-2", "3")
    return env


def test_request_approve_copy_and_the_custody_report(env: dict[str, Path]) -> None:
    asked = ok(env, "request", "copy", "--case", "A-1", "--reason", "当事人申请复制",
               "--for-party", "李四", login="wang")  # fmt: skip
    assert asked["state"] == "pending" and asked["recordings"] == [1, 2]
    [listed] = ok(env, "request", "list", "--pending")
    assert listed["request"] == asked["request"]
    own = run(env, "approve", "1", "--note", "mine", login="wang")
    assert own.exit_code == 5 and "four eyes" in own.output
    approved = ok(env, "approve", "1", "--note", "同意", login="li")
    assert approved["state"] == "approved" and approved["decided_by"].endswith("by li")
    other = run(env, "copy", "1", "--out", str(env["tmp"] / "x"), login="zhao")
    assert other.exit_code == 5 and "a grant is for the one who asked" in other.output
    package = env["tmp"] / "package"
    copied = ok(env, "copy", "1", "--out", str(package), login="wang")
    assert copied["for_party"] == "李四" and (package / "verify.py").exists()
    human = run(env, "request", "list")
    assert human.exit_code == 0 and "approved" in human.output and "copy for 李四" in human.output

    # The custody report of the case: every step, with proofs; nothing of case B-2.
    as_json = run(env, "custody", "--case", "A-1", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    kinds = [e["kind"] for e in data["events"]]
    for kind in ("recording.ingested", "case.created", "case.linked", "access.requested",
                 "access.approved", "access.copied"):  # fmt: skip
        assert kind in kinds, kind
    assert all(e["in_checkpoint"] for e in data["events"])
    assert OTHER_PARTY not in json.dumps(data, ensure_ascii=False)
    table = run(env, "custody", "--case", "A-1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table.output.lstrip("\ufeff"))))
    assert [r["kind"] for r in rows] == kinds
    text = run(env, "custody", "1", "--lang", "en")
    assert text.exit_code == 0 and "request 1" in text.output


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (poppler-utils)")
def test_the_custody_pdf_reads_back_in_chinese(env: dict[str, Path]) -> None:
    ok(env, "request", "view", "1", "--reason", "复核", login="wang")
    ok(env, "approve", "1", "--note", "同意", login="li")
    viewed = ok(env, "view", "1", "--no-play", login="wang")
    assert len(viewed["files"]) == 1
    pdf = env["tmp"] / "custody.pdf"
    made = run(env, "custody", "1", "--format", "pdf", "--out", str(pdf))
    assert made.exit_code == 0, made.output
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "监管链" in text or "保管链" in text  # the title, in Chinese
    for words in ("入库", "申请 1", "已批准", "被查看"):
        assert words in text, (words, text[:2000])
    assert OTHER_PARTY not in text


def test_confidential_recordings_are_refused_for_a_party(env: dict[str, Path]) -> None:
    marked = ok(env, "tag", "1", "--confidential", "privacy", "--reason", "未成年人")
    assert marked["recordings"] == [1] and marked["level"] == "privacy"
    refused = run(env, "request", "copy", "1", "--reason", "x", "--for-party", "李四",
                  login="wang")  # fmt: skip
    assert refused.exit_code == 5 and "confidential" in refused.output
    no_reason = run(env, "tag", "1", "--not-confidential")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    ok(env, "tag", "1", "--not-confidential", "--reason", "复核后解除")
    assert ok(env, "request", "copy", "1", "--reason", "x", "--for-party", "李四",
              login="wang")["state"] == "pending"  # fmt: skip
    assert ok(env, "verify")["ok"]


def test_a_scoped_log_export_holds_only_its_case(env: dict[str, Path]) -> None:
    out = env["tmp"] / "scoped"
    done = run(env, "log", "export", str(out), "--case", "A-1")
    assert done.exit_code == 0, done.output
    assert "prove inclusion in the log, not that it holds no others" in done.output
    blob = b"".join(p.read_bytes() for p in out.iterdir())
    assert OTHER_PARTY.encode() not in blob and "另案".encode() not in blob
    both = run(env, "log", "export", str(env["tmp"] / "y"), "--case", "A-1", "--ids", "1")
    assert both.exit_code == 2 and "not both" in both.output


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_without_the_daemon_a_user_is_told_to_ask_it(env: dict[str, Path], reachable: Path) -> None:
    # The state directory is root's (0700): another uid cannot read it, and is told so.
    shutil.copytree(env["state"], reachable / "state", symlinks=True)
    config = write_config(reachable)
    config.write_text(f'state_dir = "{reachable / "state"}"\n' + config.read_text())
    config.chmod(0o644)
    for args, words in (
        (["list"], "only root (the service) reads the state directory"),
        (["tag", "1", "--cause", "x"], "dockd is not running, and without it only root"),
        # --as-of is judged here, on the files, even while a daemon runs.
        (["report", "compliance", "--as-of", "2026-01-01T00:00:00Z"], "only root (the service)"),
    ):
        done = subprocess.run(
            ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", sys.executable,
             "-m", "dockd", "--config", str(config), *args],
            capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 5, done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr
