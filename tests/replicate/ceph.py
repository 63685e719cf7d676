"""A single-node Ceph with radosgw for the replication tests: the real S3 engine.

mon + one bluestore OSD on a sparse file + radosgw, on 127.0.0.1 with ports
of their own, in a temporary directory; about 15 s to start. Started by hand
(PID 1 here is not systemd) and stopped by its pid files. Working settings
and their reasons: ../shared/ceph-rgw/NOTES.md of the project's notes; the
two that matter most: `auth = none` needs `ms mon client mode = crc secure`
for radosgw (else it loops on auth for 5 minutes), and the OSD's data folder
is named after `$name`.

What this Ceph (16.2, Pacific) does not do, found here: it accepts
`ChecksumAlgorithm=SHA256` but returns no `ChecksumSHA256` (flexible
checksums came later): dockd must check its uploads itself (Content-MD5 per
part, and its own SHA-256 in the object's metadata).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")

_CONF = """\
[global]
fsid = {fsid}
mon initial members = a
mon host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
public network = 127.0.0.0/8
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
pid file = {d}/run/$name.pid
keyring = {d}/keyring
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
ms bind ipv6 = false
mon data avail warn = 2

[mon]
mon data = {d}/mon/$name
mon cluster log file = {d}/log/cluster.log

[osd]
osd data = {d}/osd/$name
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 10737418240
osd memory target = 1073741824

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw}
rgw data = {d}/rgw
rgw dns name = localhost
ms mon client mode = crc secure
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


@dataclass(frozen=True)
class S3User:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self, **overrides: Any) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.client(
            "s3",
            endpoint_url=overrides.get("endpoint", self.endpoint),
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )


class Ceph:
    """One cluster in `root`; `start()` returns its S3 user, `stop()` ends it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "ceph.conf"
        self.rgw_port = free_port()

    def _run(self, *argv: str, timeout: float = 60) -> str:
        done = subprocess.run([*argv], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-800:]}")
        return done.stdout

    def start(self) -> S3User:
        d = self.root
        for sub in ("run", "log", "mon", "osd", "rgw"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        mon_v2, mon_v1 = free_port(), free_port()
        self.conf.write_text(
            _CONF.format(fsid=fsid, d=d, mon_v2=mon_v2, mon_v1=mon_v1, rgw=self.rgw_port)
        )
        conf = ("-c", str(self.conf))
        monmap = d / "monmap"
        self._run("monmaptool", "--create", "--addv", "a",
                  f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]", "--fsid", fsid,
                  str(monmap))  # fmt: skip
        self._run("ceph-mon", *conf, "--mkfs", "-i", "a", "--monmap", str(monmap))
        self._run("ceph-mon", *conf, "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", *conf, "osd", "new", osd_uuid).strip()
        (d / "osd" / f"osd.{osd_id}").mkdir()
        self._run("ceph-osd", *conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self._run("ceph-osd", *conf, "-i", osd_id)
        self.start_rgw()
        access, secret = "DOCKDTESTKEY", uuid.uuid4().hex
        self._run("radosgw-admin", *conf, "user", "create", "--uid=dockd",
                  "--display-name=dockd", f"--access-key={access}",
                  f"--secret-key={secret}")  # fmt: skip
        return S3User(f"http://127.0.0.1:{self.rgw_port}", access, secret)

    def start_rgw(self, wait_s: float = 120) -> None:
        self._run("radosgw", "-c", str(self.conf), "-n", "client.rgw.a")
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.rgw_port}/", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"radosgw did not answer in {wait_s:.0f} s: see {self.root}/log")

    def _pid(self, name: str) -> int | None:
        path = self.root / "run" / f"{name}.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self, name: str, sig: int = signal.SIGTERM, wait_s: float = 30) -> None:
        """Stop one daemon (`client.rgw.a`, `osd.0`, `mon.a`) by its pid file."""
        pid = self._pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # Re-parented to a PID 1 that may not reap: a zombie counts as gone.
            try:
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    return
            except OSError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for name in ("client.rgw.a", "osd.0", "mon.a"):
            self.kill(name)

    def running(self) -> bool:
        """Whether any of its daemons is still alive (not a zombie)."""
        for name in ("client.rgw.a", "osd.0", "mon.a"):
            pid = self._pid(name)
            try:
                if pid is not None and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
                    return True
            except OSError:
                continue
        return False
