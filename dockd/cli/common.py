"""What every `dockd` command shares: consoles, the Service, and the daemon's socket."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, cast

import click
import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from dockd.clock import Clock, SystemClock, isoformat_utc, parse_time
from dockd.config import Config
from dockd.errors import DockdError, NotPermitted, UsageError
from dockd.ingest.scanner import FoundFile
from dockd.integrity import standalone_verify
from dockd.runner.client import DaemonUnavailable, request, socket_path
from dockd.runner.operations import (
    local_caller,
    only_root_without_the_daemon,
    operation,
    perform,
)
from dockd.service import Service

EXIT_CODES = """\b
Exit codes:
  0  success (ingest: everything ingested; verify: all intact)
  1  verify or audit found problems
  2  usage or configuration error
  3  ingest: ingested, but some files are flagged
  4  ingest: something could not be ingested (it stays on the camera)
  5  not permitted: your roles do not allow it, or it is not your grant
"""

# Piped output is read by people too (logs, mail); give tables room to breathe.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def service_for(ctx: click.Context, write: bool, clock: Clock | None = None) -> Service:
    """The state directory opened here (no daemon): root's, as the files are."""
    config: Config = ctx.obj
    try:
        return Service(config, clock or SystemClock(), write=write)
    except PermissionError:
        raise NotPermitted(
            f"{config.state_dir}: only root (the service) reads the state directory; ask the "
            "running daemon (dockd request …, dockd custody, dockd log export --case), or use sudo"
        ) from None


def change(
    ctx: click.Context,
    op: str,
    args: dict[str, Any],
    local: Callable[[Service], Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """Ask for `op` (an entry of runner/operations.py) through the running daemon,
    or directly when none runs.

    The daemon holds the state directory's lock; asking it keeps one writer
    and records the caller (SO_PEERCRED) as the actor. Without a daemon the
    entry runs here, with this user as the actor (or `local`, which may show
    a progress bar); an entry only the daemon can answer raises
    DaemonUnavailable. A long entry (export build) gets a day, not 30 s.
    """
    config: Config = ctx.obj
    entry = operation(op)
    if timeout is None:
        timeout = 24 * 3600.0 if entry.long else 30.0
    me = local_caller()
    try:
        return request(socket_path(config), op, args, timeout=timeout, login=me.identity.login)
    except DaemonUnavailable:
        if entry.daemon_only:
            raise
        only_root_without_the_daemon(op, me)  # before the state directory is touched
        with service_for(ctx, write=entry.writes) as service:
            if local is not None:
                return local(service)
            return perform(service, op, args, local_actor())


def empty_destination(out: Path) -> Path:
    """`out` as an absolute path, refused unless it is an empty folder or absent."""
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: must be an empty folder or not exist yet")
    return out


def receive(made: str, out: Path) -> Path:
    """Bring what the daemon made in its outbox (`made`) to `out`, as this user.

    The daemon cannot write into the caller's folders (ProtectHome=,
    PrivateTmp=); it left the files in `/run/dockd/out/<uid>/`, given to this
    user. They are copied to `out` and checked there as their verify.py
    would check them; only then is the outbox copy removed. Without a daemon
    the files were written to `out` itself, and nothing moves.
    """
    source = Path(made)
    if source == out:
        return out
    shutil.copytree(source, out, dirs_exist_ok=True)
    found = standalone_verify.check(str(out))
    if found.problems:
        listed = "; ".join(str(p) for p in found.problems[:5])
        raise DockdError(
            f"{out}: the copy from {source} does not check ({listed}); "
            f"{source} is kept, {out} is not to be used"
        )
    # Emptied, not removed: its parent is the daemon's (it takes the empty folder away).
    for child in source.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    with contextlib.suppress(OSError):
        source.rmdir()
    return out


def utc_text(value: str | None, option: str) -> str | None:
    """An option's time as UTC text: `2026-11-25T09:00:00Z`, `2026-11-25 09:00` (UTC),
    `…+08:00` or a date (clock.parse_time, the one rule)."""
    return None if value is None else isoformat_utc(parse_time(value, option))


def local_actor() -> str:
    """Who runs this command, for log entries of changes made without the daemon."""
    return local_caller().actor


def run_change(ctx: click.Context, op: str, args: dict[str, Any]) -> Any:
    """`op` through the daemon, or locally with this user as the actor."""
    return change(ctx, op, args)


def echo_change(result: dict[str, Any], as_json: bool, summary: str) -> None:
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
        return
    moved = result.get("tier_changed", 0)
    kept = result.get("kept_from_deletion", 0)
    extra = f"; retention changed for {moved}" if moved else ""
    extra += f"; {kept} taken back from pending deletion" if kept else ""
    out.print(f"{summary} (log entry {result['log_entry']}){extra}", markup=False)


def daemon_running(config: Config) -> bool:
    """True when a daemon answers on the socket (it then owns the state directory)."""
    try:
        request(socket_path(config), "status", timeout=5.0)
    except DaemonUnavailable:
        return False
    except DockdError:
        return True  # something answers, even if it refused us
    return True


# -- progress bars -------------------------------------------------------------------


def wants_bar(as_json: bool) -> bool:
    """A live bar only for a person watching: stderr is a terminal, no --json, not systemd.

    Under systemd (a unit's INVOCATION_ID, or JOURNAL_STREAM) the bar's
    redraws would land in the journal as lines of control characters.
    """
    if as_json or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return False
    return not (os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


class _Amount(ProgressColumn):
    """Bytes as "120.0/300.0 MB", other units as "12,000 entries"."""

    _bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "bytes")
        if task.total is None and not task.completed:
            return Text("")  # a stage of unknown length that counts nothing (extracting)
        if unit == "bytes":
            return self._bytes.render(task)
        done = f"{int(task.completed):,}"
        return Text(f"{done}/{int(task.total):,} {unit}" if task.total else f"{done} {unit}")


class _Speed(ProgressColumn):
    _bytes = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        counting = task.fields.get("unit") == "bytes" and (task.total is not None or task.completed)
        return self._bytes.render(task) if counting else Text("")


class _Time(ProgressColumn):
    """Time left when the total is known, else time so far."""

    _left = TimeRemainingColumn()
    _elapsed = TimeElapsedColumn()

    def render(self, task: Task) -> Text:
        return (self._elapsed if task.total is None else self._left).render(task)


class Bar:
    """One line of rich progress on stderr, fed by the core.

    It is a `dockd.progress.Meter` (verify, audit, verify-disc) and an
    ingest session's `ByteProgress`. `advance` runs once per chunk read (1
    MiB): rich only adds a sample under a lock; its own thread redraws the
    line, 10 times a second at most, whatever the rate of calls.
    """

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None
        self._files = 0
        self._files_total = 0

    # Meter
    def stage(self, name: str, total: int | None, unit: str = "bytes") -> None:
        # A new task rather than a reset: rich cannot turn a task back to an unknown total.
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=total, unit=unit)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    # dockd.runner.session.ByteProgress
    def start(self, files: int, total_bytes: int) -> None:
        self._files_total = files
        self.stage(self._ingest_text(), total_bytes)

    def file_done(self, found: FoundFile) -> None:
        # Bytes came through `advance` already; this counts the file.
        self._files += 1
        if self._task is not None:
            self._progress.update(self._task, description=self._ingest_text())

    def phase(self, name: str) -> None:
        if name == "wiping" and self._task is not None:
            self._progress.update(self._task, description="clearing the camera")

    def _ingest_text(self) -> str:
        return f"ingest: {self._files}/{self._files_total} files"


class _CurrentStderr:
    """sys.stderr as it is at each write, not as it was when logging was set up.

    While the bar is live, rich puts a proxy there that prints each line
    above the bar; log lines written past it would be cut by the redraws.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def _logs_above_the_bar() -> Iterator[None]:
    factory = structlog.get_config()["logger_factory"]
    if not isinstance(factory, structlog.PrintLoggerFactory):
        yield  # the journal: nothing of it reaches the terminal
        return
    stderr = cast(TextIO, _CurrentStderr())  # all that print() needs of a file
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stderr))
    try:
        yield
    finally:
        structlog.configure(logger_factory=factory)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Bar | None]:
    """A transient bar on stderr while the block runs, or None when not `enabled`."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _Amount(),
        _Speed(),
        _Time(),
    )
    # stdout is not redirected: a report printed meanwhile must reach stdout, not the bar's stream.
    with (
        Progress(*columns, console=err, transient=True, redirect_stdout=False) as progress,
        _logs_above_the_bar(),
    ):
        yield Bar(progress)
