"""The daemon's Unix socket: one JSON object per line each way.

Request:  {"op": "status", "args": {...}} (plus "login": sudo's user, taken from root only)
Response: {"ok": true, "result": ...} or {"ok": false, "error": "...", "exit_code": n}
          (plus "field": the argument at fault, when a UsageError names one)

The socket lives in the runtime directory, owned by root and group-writable
by the `dockd` group, so that the group's members can reach the service and
nobody else can (what each may then ask is their roles' business). The peer's uid and groups
(SO_PEERCRED, SO_PEERGROUPS) are its Identity: the roles it holds
(access/roles.py) and the actor recorded in log entries of its changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import json
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from dockd.access.roles import Identity
from dockd.config import Config
from dockd.errors import DockdError, UsageError

log = structlog.get_logger("dockd.api")

SOCKET_NAME = "dockd.sock"
# A request line longer than this is refused: nothing legitimate is that long.
MAX_LINE = 1 << 20

Handler = Callable[[str, dict[str, Any], Identity], Any]


class DaemonUnavailable(DockdError):
    """No daemon answers on the socket: the caller may work on the files itself."""


def socket_path(config: Config) -> Path:
    return config.daemon.runtime_dir / SOCKET_NAME


# Linux's SO_PEERGROUPS (asm-generic/socket.h; Python's socket module lacks the name).
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


def peer_identity(sock: socket.socket) -> Identity:
    """Who is at the other end of a Unix socket: uid, gid and supplementary groups,
    as the kernel recorded them when the peer connected (not what it claims)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, gid = struct.unpack("3i", creds)
    groups: tuple[int, ...] = ()
    try:
        # 1024 bytes (256 groups) is the most Python lets getsockopt ask for.
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)
        groups = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    except OSError:  # a kernel before 4.13: the primary group only
        log.warning("api.no_peer_groups", uid=uid)
    return Identity.of_uid(uid, gid, groups)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handler: Handler


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        actor = peer_identity(self.connection)
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            reply = self._answer(line, actor)
            try:
                self.wfile.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
                self.wfile.flush()
            except OSError:
                return

    def _answer(self, line: bytes, actor: Identity) -> dict[str, Any]:
        if len(line) > MAX_LINE:
            return {"ok": False, "error": "request too long", "exit_code": 2}
        try:
            request = json.loads(line)
            op = request["op"]
            args = request.get("args") or {}
            login = request.get("login")
            if not isinstance(op, str) or not isinstance(args, dict):
                raise TypeError
            if actor.root and isinstance(login, str) and login.isprintable() and login:
                actor = dataclasses.replace(actor, login=login[:64])  # root's word only
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "not a request: expected {op, args}", "exit_code": 2}
        try:
            return {"ok": True, "result": self.server.handler(op, args, actor)}
        except DockdError as exc:
            reply: dict[str, Any] = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            if isinstance(exc, UsageError) and exc.field is not None:
                reply["field"] = exc.field
            return reply
        except Exception as exc:  # a bug must not kill the connection thread silently
            log.exception("api.failed", op=op)
            return {"ok": False, "error": f"internal error: {type(exc).__name__}", "exit_code": 1}


class ApiServer:
    """Serves `handler(op, args, identity)` on the daemon's socket, in its own threads."""

    def __init__(self, path: Path, handler: Handler, group: str = "dockd") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket of a crashed daemon
        # Created with no access for others from the first instant.
        old = os.umask(0o117)
        try:
            self._server = _Server(str(path), _Connection)
        finally:
            os.umask(old)
        self._server.handler = handler
        try:
            os.chown(path, 0, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError):
            log.warning("api.group_missing", group=group, socket=str(path))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dockd-api", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("api.listening", socket=str(self.path))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(
    path: Path,
    op: str,
    args: dict[str, Any] | None = None,
    timeout: float = 30.0,
    login: str | None = None,
) -> Any:
    """Ask the daemon; DaemonUnavailable when none listens, DockdError when it refuses.

    `login` is the person behind a root shell (sudo's SUDO_USER): the daemon
    takes it from root only, to log it and to tell two people apart.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnavailable(f"no dockd daemon on {path}: {exc.strerror}") from None
        except PermissionError:
            raise DockdError(
                f"{path}: permission denied; members of the dockd group may use dockd status"
            ) from None
        message: dict[str, Any] = {"op": op, "args": args or {}}
        if login:
            message["login"] = login
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline(MAX_LINE * 64)
    except TimeoutError:
        raise DockdError(f"the daemon did not answer {op!r} within {timeout:.0f} s") from None
    finally:
        sock.close()
    if not line:
        raise DockdError(f"the daemon closed the connection during {op!r}")
    reply = json.loads(line)
    if not reply.get("ok"):
        field = reply.get("field")
        error = (
            UsageError(str(reply.get("error")), field=str(field))
            if field is not None
            else DockdError(str(reply.get("error")))
        )
        error.exit_code = int(reply.get("exit_code", 1))
        raise error
    return reply.get("result")
