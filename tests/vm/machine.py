"""One qemu guest, driven the way an operator drives a dock: power, USB, commands.

The guest is a real Debian 12 with systemd as PID 1, udevd and the kernel's
vfat; dockd runs in it as installed by `make install`. The host talks to
qemu over QMP (hot-plugging USB sticks, powering down) and to the guest over
the QEMU guest agent (qemu-ga on a virtio-serial port: `guest-exec` runs a
command and hands back its exit code and output). Both are JSON over unix
sockets that qemu serves; the protocols are specified in qemu's
docs/interop/qmp-spec and qga/qapi-schema.json.

What a "power cut" means here: SIGKILL of qemu. Whatever the guest kernel
had not yet handed to its virtual disk is lost (its page cache, its queued
requests), and so is what qemu's qcow2 layer had not yet made durable
(cluster mappings it keeps in memory until the guest flushes); data qemu
had written to the image file survives in the host's page cache. That is
a disk with a volatile write cache that honours flushes: what the guest
flushed is there, anything else may or may not be.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QEMU = "qemu-system-x86_64"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The guest's PATH for guest-exec: qemu-ga passes its own (systemd's) environment.
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class VMError(RuntimeError):
    """The VM or one of its channels did not do what was asked."""


@dataclass(frozen=True)
class ExecResult:
    """A command run in the guest: exit code (None if killed by a signal) and output."""

    argv: tuple[str, ...]
    rc: int | None
    stdout: str
    stderr: str

    def check(self) -> ExecResult:
        if self.rc != 0:
            raise VMError(
                f"guest: {' '.join(self.argv)} exited {self.rc}\n"
                f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"
            )
        return self


# -- the two JSON channels ---------------------------------------------------------------


class _JsonSocket:
    """Newline-separated JSON objects over a unix socket qemu serves."""

    def __init__(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise VMError(f"nothing listens on {path}") from None
                time.sleep(0.05)
        self.sock = sock
        self.buf = b""

    def send(self, obj: dict[str, Any], timeout: float = 10.0) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(json.dumps(obj).encode() + b"\n")
        except TimeoutError:
            # qemu stopped reading: nothing in the guest drains the channel.
            raise VMError("qemu does not take what is sent") from None

    def recv(self, timeout: float) -> dict[str, Any] | None:
        """The next object, or None when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise VMError("qemu closed the socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.replace(b"\xff", b"").strip()
        if not line:
            return self.recv(max(0.0, deadline - time.monotonic()))
        try:
            obj: dict[str, Any] = json.loads(line)
        except ValueError:
            # Junk left in the virtio pipe by an earlier client: skip it.
            return self.recv(max(0.0, deadline - time.monotonic()))
        return obj

    def close(self) -> None:
        self.sock.close()


class QMP:
    """The QEMU Machine Protocol: commands, and the events that arrive between them."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.chan = _JsonSocket(path, timeout)
        self.events: list[dict[str, Any]] = []
        if self.chan.recv(timeout) is None:  # the greeting
            raise VMError("no QMP greeting")
        self.command("qmp_capabilities")

    def command(self, name: str, args: dict[str, Any] | None = None, timeout: float = 60.0) -> Any:
        """Run one command (arguments as QMP names them, hyphens and all); its "return"."""
        msg: dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.chan.send(msg)
        deadline = time.monotonic() + timeout
        while (reply := self.chan.recv(deadline - time.monotonic())) is not None:
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise VMError(f"QMP {name} {args}: {reply['error'].get('desc')}")
            elif "return" in reply:
                return reply["return"]
        raise VMError(f"QMP {name}: no answer in {timeout} s")

    def wait_event(self, name: str, timeout: float, **data: Any) -> dict[str, Any]:
        """Wait for (or find, if it came already) event `name` whose data has `data`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                have = ev.get("data", {})
                if ev["event"] == name and all(have.get(k) == v for k, v in data.items()):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise VMError(f"no QMP event {name} {data} in {timeout} s")
            ev2 = self.chan.recv(min(left, 1.0))
            if ev2 is not None and "event" in ev2:
                self.events.append(ev2)

    def close(self) -> None:
        self.chan.close()


class GuestAgent:
    """qemu-ga over virtio-serial.

    The channel has no connection state on the guest side: a request sent
    before qemu-ga opened its port, or an answer to a request of a previous
    client, may still be in the pipe. `guest-sync-delimited` with a fresh id
    is the protocol's way to re-align: everything before its answer is junk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chan: _JsonSocket | None = None
        self.ids = itertools.count(int(time.time()) % 100000 * 1000)

    def _sync(self, timeout: float) -> None:
        assert self.chan is not None
        ident = next(self.ids)
        self.chan.send({"execute": "guest-sync-delimited", "arguments": {"id": ident}})
        deadline = time.monotonic() + timeout
        while (reply := self.chan.recv(deadline - time.monotonic())) is not None:
            if reply.get("return") == ident:
                return
        raise VMError("guest agent did not answer")

    def connect(self, timeout: float) -> None:
        """Wait until qemu-ga answers (it starts once udev sees its virtio port)."""
        deadline = time.monotonic() + timeout
        if self.chan is None:
            self.chan = _JsonSocket(self.path, timeout)
        while True:
            try:
                self._sync(2.0)
                return
            except (VMError, OSError):
                if time.monotonic() > deadline:
                    raise VMError(f"guest agent not up after {timeout} s") from None

    def call(self, name: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        if self.chan is None:
            raise VMError("guest agent not connected")
        msg: dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.chan.send(msg)
        reply = self.chan.recv(timeout)
        if reply is None:
            # The answer may still come later and would confuse the next call.
            self._sync(timeout)
            raise VMError(f"guest agent: {name} not answered in {timeout} s")
        if "error" in reply:
            raise VMError(f"guest agent {name}: {reply['error'].get('desc')}")
        return reply.get("return")

    def close(self) -> None:
        if self.chan is not None:
            self.chan.close()
            self.chan = None


# -- acceleration ------------------------------------------------------------------------------

_accel_verdict: str | None = None


def pick_accel(kernel: Path, initrd: Path, log: Path) -> str:
    """'kvm' if this host's /dev/kvm really boots the guest kernel, else 'tcg'.

    Opening /dev/kvm is not enough: on hosts that are themselves VMs qemu may
    abort on an MSR (`-cpu host`) or hang before the kernel's first line. So
    boot the kernel once with early printk and look for its banner; the
    verdict holds for the process. DOCKD_VM_ACCEL=kvm|tcg skips the probe.
    """
    global _accel_verdict
    forced = os.environ.get("DOCKD_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if _accel_verdict is not None:
        return _accel_verdict
    _accel_verdict = "tcg"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return _accel_verdict
    argv = [
        QEMU, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256",
        "-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot",
        "-serial", f"file:{log}", "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and b"Linux version" in log.read_bytes():
                _accel_verdict = "kvm"
                break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    return _accel_verdict


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when pytest dies, however pytest dies.

    The fixtures kill every qemu on the way out; this covers the ways out that
    run no finaliser (pytest itself SIGKILLed, a CI job timeout).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# -- the machine -------------------------------------------------------------------------------


@dataclass
class Boot:
    """What to boot: a disk (qcow2 overlay, written by the guest), its kernel and initrd."""

    disk: Path
    kernel: Path
    initrd: Path
    memory_mib: int = 1024
    cpus: int = 2


@dataclass
class Machine:
    """A running guest. Use as a context manager: qemu is killed on the way out, always."""

    boot: Boot
    workdir: Path
    accel: str = "tcg"
    proc: subprocess.Popen[bytes] | None = None
    qmp: QMP | None = None
    agent: GuestAgent | None = None
    boot_seconds: float = 0.0
    plugged: dict[str, str] = field(default_factory=dict)  # device id -> block node name
    _sockdir: Path | None = None

    @property
    def console(self) -> Path:
        return self.workdir / "console.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._sockdir is not None:  # a second boot of the same disk
            shutil.rmtree(self._sockdir, ignore_errors=True)
        self.plugged.clear()
        # Unix socket paths are limited to 107 bytes; pytest's are long.
        self._sockdir = Path(tempfile.mkdtemp(prefix="dockd-vm-", dir="/tmp"))
        qmp_sock, qga_sock = self._sockdir / "qmp", self._sockdir / "qga"
        # TCG: qemu64 rather than "max", whose AVX2 code paths (glibc picks
        # them) made Python start 2-3x slower here. +rdrand: with it the
        # guest kernel's random pool is ready before the second CPU starts;
        # without it, it became ready mid-boot and the kernel's live code
        # patching of getrandom() (an int3 breakpoint, text_poke_bp) hung a
        # vCPU under multi-threaded TCG (soft lockup in __x64_sys_getrandom,
        # qemu 7.2) in one boot of several.
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else [
            "-accel", "tcg,thread=multi", "-cpu", "qemu64,+rdrand",
        ]  # fmt: skip
        argv = [
            QEMU, "-machine", "q35", *accel,
            "-smp", str(self.boot.cpus), "-m", str(self.boot.memory_mib),
            "-display", "none", "-monitor", "none", "-nodefaults", "-no-user-config",
            # A guest reboot ends qemu: every boot here is started by the test.
            "-no-reboot",
            "-chardev", f"file,id=ser0,path={self.console},append=on", "-serial", "chardev:ser0",
            "-kernel", str(self.boot.kernel), "-initrd", str(self.boot.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0",
            "-drive", f"file={self.boot.disk},if=virtio,format=qcow2,discard=unmap",
            "-device", "qemu-xhci,id=xhci",
            "-chardev", f"socket,id=qga0,path={qga_sock},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-qmp", f"unix:{qmp_sock},server=on,wait=off",
        ]  # fmt: skip
        self._t0 = time.monotonic()
        with open(self.workdir / "qemu.log", "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest must not reach qemu first
                preexec_fn=_die_with_parent,
            )
        self.qmp = QMP(qmp_sock)
        self.agent = GuestAgent(qga_sock)

    def wait_ready(self, timeout: float = 240.0, unit: str | None = None) -> float:
        """Wait for the guest agent, then for systemd to finish booting; return boot seconds.

        `is-system-running --wait` returns when the boot job queue is empty:
        "running", or "degraded" when some unit failed (which is reported,
        not hidden: the caller sees it in the result and the journal).
        """
        assert self.agent is not None
        deadline = time.monotonic() + timeout
        try:
            self.agent.connect(timeout)
        except VMError as e:
            raise VMError(f"{e}\n--- console tail ---\n{self.console_tail()}") from None
        left = max(10.0, deadline - time.monotonic())
        state = self.run(["systemctl", "is-system-running", "--wait"], timeout=left)
        self.boot_seconds = time.monotonic() - self._t0
        if state.stdout.strip() not in ("running", "degraded"):
            raise VMError(f"guest did not boot: {state}\n{self.console_tail()}")
        if unit is not None:
            self.wait_active(unit, timeout=max(10.0, deadline - time.monotonic()))
        return self.boot_seconds

    def console_tail(self, lines: int = 40) -> str:
        if not self.console.exists():
            return ""
        text = self.console.read_bytes().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- commands in the guest --------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 120.0,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run `argv` in the guest as root; wait for it (killed after `timeout`)."""
        assert self.agent is not None
        # qemu-ga cannot kill what it started: timeout(1) in the guest does.
        full = ["timeout", "-k", "5", str(int(timeout)), *argv]
        genv = [f"PATH={GUEST_PATH}", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        genv += [f"{k}={v}" for k, v in (env or {}).items()]
        args: dict[str, Any] = {
            "path": full[0],
            "arg": full[1:],
            "env": genv,
            "capture-output": True,
        }
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode()
        pid = self.agent.call("guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout + 30
        delay = 0.05
        while True:
            st = self.agent.call("guest-exec-status", {"pid": pid})
            if st.get("exited"):
                break
            if time.monotonic() > deadline:
                raise VMError(f"guest: {argv} still running after {timeout} s")
            time.sleep(delay)
            delay = min(0.5, delay * 1.5)
        out = base64.b64decode(st.get("out-data", "")).decode("utf-8", "replace")
        err = base64.b64decode(st.get("err-data", "")).decode("utf-8", "replace")
        rc = st.get("exitcode") if "signal" not in st else None
        return ExecResult(tuple(argv), rc, out, err)

    def sh(self, script: str, timeout: float = 120.0) -> ExecResult:
        return self.run(["/bin/sh", "-c", script], timeout=timeout)

    def write_file(self, path: str, data: bytes | str, mode: str = "0644") -> None:
        if isinstance(data, str):
            data = data.encode()
        self.run(
            ["/bin/sh", "-c", f'mkdir -p "$(dirname "{path}")" && cat > "{path}"'
             f' && chmod {mode} "{path}"'],
            input=data,
        ).check()  # fmt: skip

    def wait_active(self, unit: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = self.run(["systemctl", "is-active", unit])
            if r.stdout.strip() == "active":
                return
            if time.monotonic() > deadline:
                status = self.run(["systemctl", "status", "--no-pager", "-l", unit])
                raise VMError(f"{unit} is {r.stdout.strip()}:\n{status.stdout}")
            time.sleep(0.5)

    def wait_for(
        self, script: str, timeout: float, interval: float = 0.5, what: str = ""
    ) -> ExecResult:
        """Run shell `script` until it exits 0; its last result."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.sh(script)
            if r.rc == 0:
                return r
            if time.monotonic() > deadline:
                raise VMError(f"timed out ({timeout} s) waiting for {what or script}: {r}")
            time.sleep(interval)

    # -- USB ----------------------------------------------------------------------------------

    def plug(self, image: Path, serial: str, dev_id: str, port: int | None = None) -> None:
        """Plug `image` in as a USB mass-storage stick with USB serial `serial`.

        `port` pins the xHCI root port (1-4 are USB 2 ports): dockd's slot is
        the port's udev ID_PATH, so a re-plug into the same port is the same slot.
        """
        assert self.qmp is not None
        node = f"blk-{dev_id}"
        self.qmp.command(
            "blockdev-add",
            {
                "driver": "raw",
                "node-name": node,
                "file": {"driver": "file", "filename": str(image)},
            },
        )
        args: dict[str, Any] = {
            "driver": "usb-storage",
            "bus": "xhci.0",
            "drive": node,
            "serial": serial,
            "id": dev_id,
            "removable": True,
        }
        if port is not None:
            args["port"] = str(port)
        try:
            self.qmp.command("device_add", args)
        except VMError:
            self.qmp.command("blockdev-del", {"node-name": node})
            raise
        self.plugged[dev_id] = node

    def unplug(self, dev_id: str, timeout: float = 30.0) -> None:
        """Pull the stick out: the guest sees the USB device vanish at once."""
        assert self.qmp is not None
        node = self.plugged.pop(dev_id)
        self.qmp.command("device_del", {"id": dev_id})
        self.qmp.wait_event("DEVICE_DELETED", timeout, device=dev_id)
        self.qmp.command("blockdev-del", {"node-name": node})

    # -- power ----------------------------------------------------------------------------------

    def power_cut(self) -> None:
        """SIGKILL qemu: the guest gets no warning and its page cache is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close_channels()

    def shutdown(self, timeout: float = 120.0) -> None:
        """ACPI power button (needs dbus in the guest for logind to act), then wait."""
        if self.proc is None or self.proc.poll() is not None:
            return
        assert self.qmp is not None
        with contextlib.suppress(VMError, OSError):
            self.qmp.command("system_powerdown")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.power_cut()
            raise VMError(f"guest did not power off in {timeout} s") from None
        self._close_channels()

    def _close_channels(self) -> None:
        for chan in (self.qmp, self.agent):
            if chan is not None:
                with contextlib.suppress(OSError):
                    chan.close()
        self.qmp = self.agent = None

    def kill(self) -> None:
        """The last resort, run on every way out: no qemu outlives its test."""
        self.power_cut()
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None

    def __enter__(self) -> Machine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
