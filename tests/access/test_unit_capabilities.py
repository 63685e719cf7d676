"""Views and copies with only the capabilities the systemd unit keeps (CAP_SYS_ADMIN,
CAP_CHOWN): root without CAP_DAC_OVERRIDE or CAP_FOWNER must still hand files to the
requester and take them away again; the requester, another uid, reads and moves them."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import Config, DaemonConfig
from dockd.service import Service
from tests.access.test_access import ACCESS, ALICE, BOB
from tests.test_service_retention import Shot, at, dock, quick

REPO = Path(__file__).resolve().parents[2]

# As the daemon would, in a process holding only the unit's capabilities.
_DAEMON_SIDE = """
import json, sys
from datetime import timedelta
from pathlib import Path
from dockd.clock import FixedClock
from dockd.config import load_config
from dockd.service import Service
from tests.access.test_access import ALICE
from tests.conftest import NOW

config = load_config(Path(sys.argv[1]))
clock = FixedClock(NOW + timedelta(minutes=1))
step = sys.argv[2]
with Service(config, clock) as svc:
    if step == "use":
        viewed = svc.view(int(sys.argv[3]), caller=ALICE)
        out = svc.outbox(ALICE, "copy")
        copied = svc.copy(int(sys.argv[4]), out, caller=ALICE)
        print("RESULT", json.dumps({"files": list(viewed.files), "package": copied.package.out}))
    else:  # after the grant's end, and after the requester emptied the outbox
        clock.current = NOW + timedelta(days=30)
        closed = svc.close_ended_views()
        svc.outbox(ALICE, "next")  # takes the emptied folders away
        print("RESULT", json.dumps({"closed": closed}))
"""

# As the requester's CLI would: read the view, move the package, empty the outbox.
_USER_SIDE = """
import json, sys
from pathlib import Path
from dockd.cli.common import receive
viewed, package, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
data = Path(viewed).read_bytes()
receive(package, out)
print("RESULT", json.dumps({"read": len(data), "moved": sorted(p.name for p in out.iterdir())}))
"""


def _run(argv: list[str]) -> dict[str, object]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    found: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return found


@pytest.mark.skipif(
    os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_the_units_capabilities_are_enough_for_views_and_copies(
    config: Config, clock: FixedClock, tmp_path: Path, reachable: Path
) -> None:
    runtime = reachable / "run"
    cfg = dataclasses.replace(
        quick(config), access=ACCESS, daemon=DaemonConfig(runtime_dir=runtime)
    )
    with Service(cfg, clock) as svc:
        [rec] = dock(svc, tmp_path / "cam", "CAM1", [Shot(at(1), os.urandom(3000), 1)])
        view = svc.request_access("view", ids=[rec.id], reason="x", caller=ALICE)
        svc.decide_request(view.request, approve=True, note="ok", caller=BOB)
        copy = svc.request_access("copy", ids=[rec.id], reason="x", caller=ALICE)
        svc.decide_request(copy.request, approve=True, note="ok", caller=BOB)
    toml = tmp_path / "dockd.toml"
    toml.write_text(
        f'state_dir = "{cfg.state_dir}"\n[ingest]\nffprobe = "{cfg.ingest.ffprobe}"\n'
        f'min_free_bytes = 0\n[daemon]\nruntime_dir = "{runtime}"\n'
        '[access]\nofficer = ["6001"]\nsupervisor = ["6002"]\nconfidential = ["6007"]\n'
    )
    unit = ["setpriv", "--bounding-set=-all,+sys_admin,+chown", "--inh-caps=-all"]
    used = _run([*unit, sys.executable, "-c", _DAEMON_SIDE, str(toml), "use",
                 str(view.request), str(copy.request)])  # fmt: skip
    [viewed] = used["files"]  # type: ignore[misc]
    home = reachable / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    user = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
    moved = _run([*user, sys.executable, "-c", _USER_SIDE, str(viewed),
                  str(used["package"]), str(home / "copy")])  # fmt: skip
    assert moved["read"] == 3000 and "verify.py" in moved["moved"]  # type: ignore[operator]
    after = _run([*unit, sys.executable, "-c", _DAEMON_SIDE, str(toml), "after"])
    assert after["closed"] and not Path(viewed).exists()
    assert list((runtime / "out" / "1000").iterdir()) == []  # emptied, then taken away
