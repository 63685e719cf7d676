"""The daemon's HTTP API on its Unix socket (Starlette routes, served by front.py).

`POST /v1/ops/<op>` runs one entry of the request table (operations.py) with
the JSON body as its arguments: `{"result": …}` (200), or `{"error",
"exit_code", "field"?}` with the status of ERROR_STATUS. `GET /v1/openapi.json`
describes every entry (openapi.py; shipped as docs/openapi.json). `GET /admin`
is the compliance page with its charts, for those the permission table lets
read the report.

The socket lives in the runtime directory, owned by root and group-writable
by the `dockd` group, so that the group's members can reach the service and
nobody else can (what each may then ask is their roles' business). The peer's
uid and groups (SO_PEERCRED, SO_PEERGROUPS, taken by PeerProtocol when the
connection is made) are its Identity: the roles it holds (access/roles.py)
and the actor recorded in log entries of its changes. A connection over TCP
(the dock's screen) has no such identity, and the API refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import json
import os
import socket
import struct
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from dockd.access.roles import Identity
from dockd.errors import DockdError, NotPermitted, Stopping, UnknownOperation, UsageError
from dockd.runner.client import API_PREFIX, LOGIN_HEADER

log = structlog.get_logger("dockd.api")

# A request body longer than this is refused: nothing legitimate is that long.
MAX_BODY = 1 << 20
PEER = "dockd.peer"  # the ASGI scope's key of the connection's Identity

Handler = Callable[[str, dict[str, Any], Identity], Any]

# HTTP status by exit code (errors.py): what a client that is not the CLI reads.
ERROR_STATUS = {2: 400, 4: 409, 5: 403}
UNKNOWN_STATUS = 404  # no such operation
OTHER_STATUS = 422  # refused for what the catalog holds (exit 1)
INTERNAL_STATUS = 500
STOPPING_STATUS = 503


# Linux's SO_PEERGROUPS (asm-generic/socket.h; Python's socket module lacks the name).
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


def peer_identity(sock: Any) -> Identity:
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


class PeerProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that puts the Unix socket peer's Identity into each
    request's scope: taken from the kernel once per connection, before any byte is read."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return  # TCP (the screen): no identity, and the API refuses it
        who = peer_identity(sock)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope[PEER] = who
            await inner(scope, receive, send)

        self.app = app


def bind_unix(path: Path, group: str = "dockd") -> socket.socket:
    """The listening socket at `path`: no access for others from its first instant, then
    handed to root:`group` (the group's members reach the API)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket of a crashed daemon
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    sock.listen(64)
    try:
        os.chown(path, 0, grp.getgrnam(group).gr_gid)
    except (KeyError, PermissionError):
        log.warning("api.group_missing", group=group, socket=str(path))
    return sock


def _refusal(exc: Exception, op: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the JSON body that answer `exc`."""
    if isinstance(exc, DockdError):
        body: dict[str, Any] = {"error": str(exc), "exit_code": exc.exit_code}
        if isinstance(exc, UsageError) and exc.field is not None:
            body["field"] = exc.field
        if isinstance(exc, Stopping):
            status = STOPPING_STATUS
        elif isinstance(exc, UnknownOperation):
            status = UNKNOWN_STATUS
        else:
            status = ERROR_STATUS.get(exc.exit_code, OTHER_STATUS)
        return status, body
    log.error("api.failed", op=op, exc_info=exc)  # a bug: said, not hidden
    return INTERNAL_STATUS, {"error": f"internal error: {type(exc).__name__}", "exit_code": 1}


def caller_of(request: Request) -> Identity:
    """The connection's Identity; root may name the person behind its shell."""
    who: Identity | None = request.scope.get(PEER)
    if who is None:
        raise NotPermitted("the API answers on the daemon's Unix socket only")
    login = request.headers.get(LOGIN_HEADER)
    if who.root and login and login.isprintable():
        who = dataclasses.replace(who, login=login[:64])  # root's word only
    return who


async def _arguments(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise UsageError("request too long")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise UsageError("request too long")
    try:
        args = json.loads(body or b"{}")
    except ValueError:
        raise UsageError("not a request: the body must be a JSON object of arguments") from None
    if not isinstance(args, dict):
        raise UsageError("not a request: the body must be a JSON object of arguments")
    return args


def api_routes(
    handler: Handler, spec: Callable[[], dict[str, Any]], admin: Callable[[Identity, str], str]
) -> list[Route]:
    """The API's routes: `handler(op, args, who)` answers each operation (Daemon.handle),
    `spec()` is the OpenAPI document, `admin(who, lang)` the admin page's HTML."""

    async def run(request: Request) -> Response:
        op = request.path_params["op"]
        try:
            who = caller_of(request)
            args = await _arguments(request)
            # The handler blocks (catalog, store, long requests): a worker thread of its own.
            result = await asyncio.to_thread(handler, op, args, who)
        except Exception as exc:
            status, body = _refusal(exc, op)
            return JSONResponse(body, status_code=status)
        text = json.dumps({"result": result}, ensure_ascii=False)
        return Response(text, media_type="application/json")

    async def openapi(_: Request) -> Response:
        return JSONResponse(spec())

    async def admin_page(request: Request) -> Response:
        lang = "en" if request.query_params.get("lang") == "en" else "zh"
        try:
            who = caller_of(request)
            html = await asyncio.to_thread(admin, who, lang)
        except Exception as exc:
            status, body = _refusal(exc, "admin")
            return HTMLResponse(f"<p>{escape(body['error'])}</p>", status_code=status)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    return [
        Route(API_PREFIX + "{op}", run, methods=["POST"]),
        Route("/v1/openapi.json", openapi),
        Route("/admin", admin_page),
    ]
