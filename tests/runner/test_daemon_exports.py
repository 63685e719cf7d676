"""Every request through one table (runner/operations.py), and exports through the daemon.

`dockd export build` and `export resume` used to open a writing Service
themselves, so an archivist had to stop the dock's daemon to make discs
(issue 14). Now they are requests: the daemon builds in a thread of its own
and shows the build in `dockd status` ("exports"); the CLI waits for it.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dockd.clock import SystemClock
from dockd.errors import DockdError
from dockd.runner.client import DaemonUnavailable
from dockd.runner.daemon import Daemon
from dockd.runner.operations import OPERATIONS, Host, Operation, perform
from dockd.service import Service
from tests.conftest import recent
from tests.runner.test_daemon import (  # noqa: F401  (fixtures)
    _FOREIGN_ENV,
    REPO,
    ROOT,
    Dockd,
    clip_name,
    daemon,
    dockd,
    ingest_directly,
    inproc_config,
    log_entry,
    log_stream,
)


def _entries(d: Dockd, kind: str) -> list[dict[str, Any]]:
    with Service(d.load(), SystemClock(), write=False) as service:
        size, _ = service.catalog.head()
    found = [log_entry(d, seq) for seq in range(1, size + 1)]
    return [e["data"] for e in found if e["kind"] == kind]


@pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso")
def test_export_build_and_resume_through_the_running_daemon(
    dockd: Dockd,  # noqa: F811  (the fixture)
    recent_clips: list[Path],
    now_utc: datetime,
) -> None:
    start = recent(now_utc)
    clips = [(clip_name(i, i + 1, first=start), recent_clips[i]) for i in range(3)]
    ids = ingest_directly(dockd, clips)
    dockd.start()
    out = dockd.tmp / "discs"
    # Asked for and approved through the daemon by two people (root, by sudo's login).
    asked = dockd.cli_json("request", "export", *map(str, ids), "--reason", "court copy",
                           env={"SUDO_USER": "archivist-wang"})  # fmt: skip
    approved = dockd.cli_json("approve", str(asked["request"]), "--note", "yes",
                              env={"SUDO_USER": "supervisor-li"})  # fmt: skip
    assert approved["state"] == "approved" and approved["decided_by"].endswith("supervisor-li")
    argv = [sys.executable, "-m", "dockd", "--config", str(dockd.config), "export", "build",
            "--media", "dvd", "--tier", "any", "--copies", "2", "--out", str(out),
            "--request", str(asked["request"]), "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    build = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    seen: list[dict[str, Any]] = []
    while build.poll() is None:  # what `dockd status --json` shows while it builds
        seen += dockd.status()["exports"]
        time.sleep(0.05)
    stdout, stderr = build.communicate()
    assert build.returncode == 0, stderr
    built = json.loads(stdout)
    labels = [d["label"] for d in built["discs"]]
    assert len(labels) == 2 and all(d["built"] for d in built["discs"])
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{x}.iso" for x in labels)

    # After it: one finished entry, as `dockd status --json` prints it.
    status = dockd.cli_json("status")
    [entry] = status["exports"]
    me = pwd.getpwuid(os.getuid()).pw_name
    caller = f"{me}({os.getuid()})"
    assert entry["key"] == f"export:{built['export']}" and entry["state"] == "done", entry
    assert (entry["discs_done"], entry["discs_total"]) == (2, 2)
    assert entry["bytes_total"] > 0 and entry["bytes_done"] == entry["bytes_total"]
    assert entry["by"] == caller
    assert all(e["key"] == entry["key"] for e in seen)
    for e in seen:  # progress only ever moves forward, within its totals
        assert 0 <= e["discs_done"] <= e["discs_total"] == 2
        assert 0 <= e["bytes_done"] <= e["bytes_total"]

    [planned] = _entries(dockd, "export.planned")
    assert planned["by"] == caller and planned["approved_by"].endswith("via sudo by supervisor-li")
    assert planned["request"] == asked["request"]
    assert sorted(planned["discs"][0]["recordings"]) == sorted(ids)
    made = _entries(dockd, "export.disc_built")
    assert [m["label"] for m in made] == labels and all(m["by"] == caller for m in made)

    # A lost image: resume rebuilds it, re-checks the other, through the daemon again.
    (out / f"{labels[1]}.iso").unlink()
    resumed = dockd.cli_json("export", "resume", str(built["export"]), "--out", str(out))
    assert [d["built"] for d in resumed["discs"]] == [False, True]
    assert (out / f"{labels[1]}.iso").exists()
    made = _entries(dockd, "export.disc_built")
    assert len(made) == 3 and made[-1]["label"] == labels[1] and made[-1]["by"] == caller
    [entry] = dockd.status()["exports"]
    assert entry["state"] == "done" and entry["discs_done"] == 2
    # A refusal made in the daemon's export thread comes back with its exit code.
    missing = dockd.cli("export", "resume", "99", "--out", str(out))
    assert missing.returncode == 2 and "no export 99" in missing.stderr
    assert dockd.answers()
    code, _ = dockd.stop()
    assert code == 0


def test_a_copy_and_a_scoped_export_come_through_the_daemons_outbox(
    dockd: Dockd,  # noqa: F811  (the fixture)
    recent_clips: list[Path],
    now_utc: datetime,
) -> None:
    """The daemon (ProtectHome=, PrivateTmp=) writes into /run/dockd/out/<uid>/ only; the
    CLI moves what it made to the folder asked for, checks it there, and empties the
    outbox."""
    start = recent(now_utc)
    ids = ingest_directly(dockd, [(clip_name(i, i + 1, first=start), recent_clips[i])
                                  for i in range(2)])  # fmt: skip
    dockd.start()
    wang, li = {"SUDO_USER": "wang"}, {"SUDO_USER": "li"}
    asked = dockd.cli_json("request", "copy", *map(str, ids), "--reason", "court", env=wang)
    dockd.cli_json("approve", str(asked["request"]), "--note", "ok", env=li)
    out = dockd.tmp / "for-court"
    copied = dockd.cli_json("copy", str(asked["request"]), "--out", str(out), env=wang)
    assert copied["package"]["out"] == str(out) and (out / "verify.py").is_file()
    outbox = dockd.runtime / "out" / "0"
    assert outbox.is_dir() and list(outbox.iterdir()) == []  # moved, then emptied
    exported = dockd.tmp / "entries"
    done = dockd.cli("log", "export", str(exported), "--ids", ",".join(map(str, ids)))
    assert done.returncode == 0, done.stderr
    assert (exported / "entries.jsonl").is_file() and list(outbox.iterdir()) == []
    busy = dockd.cli("copy", str(asked["request"]), "--out", str(out), env=wang)
    assert busy.returncode == 2 and "must be an empty folder" in busy.stderr
    code, _ = dockd.stop()
    assert code == 0


def test_every_operation_runs_here_or_says_it_needs_the_daemon(service: Service) -> None:
    assert {"status", "reload", "devices", "checkpoint", "audit", "key.rotate",
            "export.build", "export.resume", "export.burn"} <= set(OPERATIONS)  # fmt: skip
    host = Host(service)
    for name, entry in OPERATIONS.items():
        assert isinstance(entry, Operation) and callable(entry.run), name
        if entry.daemon_only:
            assert not entry.writes, name
            with pytest.raises(DaemonUnavailable, match="dockd is not running"):
                entry.run(host, {}, "alice(1000)")
    assert perform(service, "devices", {}, None) == []
    assert perform(service, "checkpoint", {}, None)["checkpoint"].startswith(service.origin)


def test_daemon_handle_is_one_lookup(daemon: Daemon) -> None:  # noqa: F811
    """No request is answered before the table: handle names no operation."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(Daemon.handle)))
    texts = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n is not tree.body[0]
    ]
    assert not set(texts) & set(OPERATIONS), texts
    compared = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Compare)
        and any(isinstance(x, ast.Name) and x.id == "op" for x in [n.left, *n.comparators])
    ]
    assert not compared, "handle compares the op name"
    # The same refusal of an unknown op, from the daemon and from the table.
    with pytest.raises(DockdError, match="unknown request 'format-disk'") as by_daemon:
        daemon.handle("format-disk", {}, ROOT)
    assert daemon.service is not None
    with pytest.raises(DockdError) as locally:
        perform(daemon.service, "format-disk", {}, None)
    assert str(by_daemon.value) == str(locally.value)
    assert by_daemon.value.exit_code == locally.value.exit_code == 1
    # A long entry runs in its own thread, and its errors reach the caller.
    with pytest.raises(DockdError, match="no export 7"):
        daemon.handle("export.resume", {"export": 7, "out": "/nonexistent"}, ROOT)
    assert daemon.handle("status", {}, ROOT)["exports"] == []
