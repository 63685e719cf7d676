"""The daemon's HTTP API over a real Unix socket (uvicorn, Starlette; the CLI's client)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockd.access.roles import Identity
from dockd.errors import ConfigError, DockdError, Stopping, UnknownOperation, UsageError
from dockd.runner.api import MAX_BODY
from dockd.runner.client import DaemonUnavailable, UnixConnection, request
from tests.runner.api_server import ApiServer


def _handler(op: str, args: dict[str, Any], who: Identity) -> Any:
    if op == "echo":
        return {
            "args": args, "actor": who.actor, "uid": who.uid, "groups": list(who.groups),
            "login": who.login,
        }  # fmt: skip
    if op == "bad":
        raise ConfigError("no such thing")
    if op == "bug":
        raise RuntimeError("oops")
    if op == "stopping":
        raise Stopping("dockd is stopping: ask again when it has restarted")
    if op == "empty":
        raise UsageError("reason: must not be empty", field="reason")
    raise UnknownOperation(f"unknown request {op!r}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run" / "dockd.sock"
    api = ApiServer(path, _handler, group="no-such-group-here")
    api.start()
    try:
        yield path
    finally:
        api.stop()


def test_request_and_reply(server: Path) -> None:
    result = request(server, "echo", {"a": 1})
    assert result["args"] == {"a": 1}
    assert result["actor"].endswith(f"({os.getuid()})") and result["uid"] == os.getuid()
    assert set(os.getgroups()) | {os.getgid()} <= set(result["groups"])


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_identity_is_the_kernels_not_the_callers_word(reachable: Path) -> None:
    # Another uid and groups, no account needed: what SO_PEERCRED/SO_PEERGROUPS report.
    server = reachable / "dockd.sock"
    api = ApiServer(server, _handler, group="no-such-group-here")
    api.start()
    os.chmod(server, 0o666)
    code = (
        "import json,sys; from dockd.runner.client import request; "
        "print(json.dumps(request(sys.argv[1], 'echo', {})))"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=4321", "--regid=4400", "--groups=4401,4402",
         sys.executable, "-c", code, str(server)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    api.stop()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["uid"] == 4321 and seen["actor"] == "uid(4321)"
    assert seen["groups"] == [4400, 4401, 4402]


def test_socket_is_not_world_accessible(server: Path) -> None:
    mode = stat.S_IMODE(server.stat().st_mode)
    assert stat.S_ISSOCK(server.stat().st_mode)
    assert mode & 0o007 == 0, oct(mode)


def test_errors_keep_their_exit_code(server: Path) -> None:
    with pytest.raises(DockdError, match="no such thing") as info:
        request(server, "bad")
    assert info.value.exit_code == 2
    with pytest.raises(DockdError, match="internal error: RuntimeError"):
        request(server, "bug")
    with pytest.raises(DockdError, match="unknown request 'nope'"):
        request(server, "nope")


def test_the_field_at_fault_crosses_the_socket(server: Path) -> None:
    # The CLI spells the service's field as its option (--reason) on either path.
    with pytest.raises(UsageError) as info:
        request(server, "empty")
    assert info.value.field == "reason" and info.value.exit_code == 2
    assert str(info.value) == "reason: must not be empty"


def _raw(
    path: Path, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    conn = UnixConnection(path, 30)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        answer = conn.getresponse()
        body = answer.read()
        json_body = "json" in (answer.getheader("Content-Type") or "")
        return answer.status, json.loads(body) if json_body else {"text": body.decode()}
    finally:
        conn.close()


def test_http_status_says_what_kind_of_refusal(server: Path) -> None:
    assert _raw(server, "POST", "/v1/ops/echo", b"{}")[0] == 200
    assert _raw(server, "POST", "/v1/ops/bad")[0] == 400  # exit 2: usage, config
    status, body = _raw(server, "POST", "/v1/ops/nope")
    assert (status, body["exit_code"]) == (404, 1)
    status, body = _raw(server, "POST", "/v1/ops/bug")
    assert (status, body["error"]) == (500, "internal error: RuntimeError")
    assert _raw(server, "POST", "/v1/ops/stopping")[0] == 503
    assert _raw(server, "GET", "/v1/ops/echo")[0] == 405  # an operation is a POST


@pytest.mark.parametrize("payload", [b"not json", b'["op"]', b"3", b'"x"'])
def test_malformed_requests_are_answered_not_fatal(server: Path, payload: bytes) -> None:
    status, reply = _raw(server, "POST", "/v1/ops/echo", payload)
    assert status == 400
    assert reply == {
        "error": "not a request: the body must be a JSON object of arguments",
        "exit_code": 2,
    }
    assert request(server, "echo")["args"] == {}, "the server still answers"


def test_overlong_request_is_refused(server: Path) -> None:
    body = b'{"x": "' + b"a" * MAX_BODY + b'"}'
    status, reply = _raw(server, "POST", "/v1/ops/echo", body)
    assert status == 400 and reply["error"] == "request too long"


def test_several_requests_on_one_connection(server: Path) -> None:
    conn = UnixConnection(server, 30)
    try:
        seen = []
        for n in (1, 2):
            conn.request("POST", "/v1/ops/echo", body=json.dumps({"n": n}))
            seen.append(json.loads(conn.getresponse().read())["result"]["args"]["n"])
    finally:
        conn.close()
    assert seen == [1, 2]


def test_the_openapi_description_is_served(server: Path) -> None:
    status, spec = _raw(server, "GET", "/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.1")
    assert "/v1/ops/status" in spec["paths"]


def test_over_tcp_the_api_has_no_identity_and_refuses(tmp_path: Path) -> None:
    # The screen's TCP listener serves the same app: the API must not answer there.
    from starlette.applications import Starlette

    from dockd.runner.api import api_routes
    from dockd.runner.front import HttpServer, bind_tcp
    from dockd.runner.openapi import openapi_document

    sock = bind_tcp("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = Starlette(routes=api_routes(_handler, openapi_document, lambda who, lang: "admin"))
    front = HttpServer(app, [sock])
    front.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/ops/echo", body=b"{}")
        answer = conn.getresponse()
        reply = json.loads(answer.read())
        conn.request("GET", "/admin")
        admin = conn.getresponse()
        admin.read()
        conn.close()
    finally:
        front.stop()
    assert answer.status == 403 and reply["exit_code"] == 5
    assert "Unix socket only" in reply["error"]
    assert admin.status == 403


def test_no_daemon_is_daemon_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnavailable):
        request(tmp_path / "nothing.sock", "status")
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()  # a socket file nobody listens on: a crashed daemon's leftover
    with pytest.raises(DaemonUnavailable):
        request(stale, "status")


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dockd.sock"
    path.write_text("left by a crash")
    api = ApiServer(path, _handler)
    api.start()
    try:
        assert request(path, "echo")["args"] == {}
    finally:
        api.stop()
    assert not path.exists(), "stop() removes the socket"
    assert path.parent.is_dir()


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_only_roots_word_on_who_is_behind_it_is_taken(reachable: Path) -> None:
    server = reachable / "dockd.sock"
    api = ApiServer(server, _handler, group="no-such-group-here")
    api.start()
    os.chmod(server, 0o666)
    try:
        assert request(server, "echo", login="alice")["login"] == "alice"  # root's client
        code = (
            "import json,sys; from dockd.runner.client import request; "
            "print(json.dumps(request(sys.argv[1], 'echo', {}, login='root')))"
        )
        done = subprocess.run(
            ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", sys.executable,
             "-c", code, str(server)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        api.stop()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["login"] is None  # a user cannot claim to be someone
