"""What every `dockd` command shares: consoles, the Service, and the daemon's socket."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from dockd.api import DaemonUnavailable, request, socket_path
from dockd.clock import SystemClock, isoformat_utc
from dockd.config import Config
from dockd.errors import ConfigError, DockdError
from dockd.service import Service

# Piped output is read by people too (logs, mail); give tables room to breathe.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def service_for(ctx: click.Context, write: bool) -> Service:
    config: Config = ctx.obj
    return Service(config, SystemClock(), write=write)


def change(
    ctx: click.Context,
    op: str,
    args: dict[str, Any],
    local: Callable[[Service], Any],
    timeout: float = 30.0,
) -> Any:
    """Make a change through the running daemon, or directly when none runs.

    The daemon holds the state directory's lock; asking it keeps one writer
    and records the caller (SO_PEERCRED) as the actor.
    """
    config: Config = ctx.obj
    try:
        return request(socket_path(config), op, args, timeout=timeout)
    except DaemonUnavailable:
        with service_for(ctx, write=True) as service:
            return local(service)


def utc_text(value: str | None, option: str) -> str | None:
    """Accept `2026-11-25T09:00:00Z`, `2026-11-25 09:00` (UTC), `…+08:00` or a date."""
    if value is None:
        return None
    text = value.strip().replace(" ", "T", 1)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option}: not a time: {value!r} (use e.g. 2026-11-25T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # documented: times without an offset are UTC
    return isoformat_utc(moment)


def local_actor() -> str:
    """Who runs this command, for log entries of changes made without the daemon."""
    import os
    import pwd

    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "uid"
    sudo = os.environ.get("SUDO_USER")
    return f"{name}({uid})" + (f" via sudo by {sudo}" if sudo else "")


def checkpoint_json(service: Service) -> dict[str, Any]:
    """Sign a checkpoint now; with the keys that verify it (CLI and socket alike)."""
    note = service.checkpoint()
    return {"checkpoint": note, "keys": [k.to_text() for k in service.trusted_keys()]}


def daemon_running(config: Config) -> bool:
    """True when a daemon answers on the socket (it then owns the state directory)."""
    try:
        request(socket_path(config), "status", timeout=5.0)
    except DaemonUnavailable:
        return False
    except DockdError:
        return True  # something answers, even if it refused us
    return True
