"""The CLI's side of the daemon's HTTP API, over the Unix socket (the server: api.py).

One request is one `POST /v1/ops/<op>` with the arguments as a JSON object;
the answer is `{"result": …}` (200) or `{"error", "exit_code", "field"?}`
with a 4xx/5xx status (docs/openapi.json lists them). The standard library's
HTTP client is enough here: the CLI starts often and should start fast, and
the only transport it needs is a Unix socket, which it connects itself.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from dockd.config import Config
from dockd.errors import DockdError, UsageError

SOCKET_NAME = "dockd.sock"
API_PREFIX = "/v1/ops/"
# Root's word for the person behind a root shell (sudo's SUDO_USER); from root only.
LOGIN_HEADER = "X-Dockd-Login"
# An answer longer than this is not the daemon's (the largest, custody, is megabytes).
MAX_ANSWER = 1 << 30


class DaemonUnavailable(DockdError):
    """No daemon answers on the socket: the caller may work on the files itself."""


def socket_path(config: Config) -> Path:
    return config.daemon.runtime_dir / SOCKET_NAME


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a Unix socket: the host name is only the Host header's."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("dockd", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def get(path: Path, target: str, timeout: float = 30.0) -> tuple[int, str, bytes]:
    """GET `target` (e.g. "/admin") on the daemon's socket: status, content type, body."""
    conn = _open(path, timeout)
    try:
        conn.request("GET", target)
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read(MAX_ANSWER)
    except TimeoutError:
        raise DockdError(f"the daemon did not answer {target} within {timeout:.0f} s") from None
    finally:
        conn.close()


def _open(path: Path, timeout: float) -> UnixConnection:
    conn = UnixConnection(path, timeout)
    try:
        conn.connect()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise DaemonUnavailable(f"no dockd daemon on {path}: {exc.strerror}") from None
    except PermissionError:
        raise DockdError(
            f"{path}: permission denied; members of the dockd group may use dockd status"
        ) from None
    return conn


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
    conn = _open(path, timeout)
    headers = {"Content-Type": "application/json"}
    if login:
        headers[LOGIN_HEADER] = login
    try:
        conn.request("POST", API_PREFIX + op, body=json.dumps(args or {}), headers=headers)
        answer = conn.getresponse()
        body = answer.read(MAX_ANSWER)
    except TimeoutError:
        raise DockdError(f"the daemon did not answer {op!r} within {timeout:.0f} s") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise DockdError(f"the daemon closed the connection during {op!r}: {exc}") from None
    finally:
        conn.close()
    try:
        reply = json.loads(body)
    except ValueError:
        raise DockdError(f"the daemon's answer to {op!r} is not JSON ({answer.status})") from None
    if answer.status == 200:
        return reply.get("result")
    field = reply.get("field")
    message = str(reply.get("error") or f"HTTP {answer.status}")
    error = UsageError(message, field=str(field)) if field is not None else DockdError(message)
    error.exit_code = int(reply.get("exit_code", 1))
    raise error
