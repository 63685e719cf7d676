"""structlog set-up: stable event names with fields, on stderr or in the journal.

Event names (`session.start`, `ingest.file.ingested`, …) and field names are
an interface: journald queries (`journalctl -u dockd DOCKD_EVENT=session.done`)
and log shippers match on them, so rename none.

Formats (`log.format`):

- ``keyvalue``: ``timestamp=… level=… event=… key=value`` lines on stderr.
- ``json``: one JSON object per line on stderr.
- ``console``: structlog's ConsoleRenderer on stderr; colours only on a terminal.
- ``journald``: native journal entries (the protocol of systemd's
  ``sd_journal_sendv``): MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=dockd,
  DOCKD_EVENT and one ``DOCKD_<KEY>`` field per event key.
- ``auto``: journald when stderr is the journal stream systemd connected
  (``JOURNAL_STREAM``, systemd.exec(5)), console on a terminal, else keyvalue.

The journald mapping (`journald_fields`) is a pure function so that the
field names can be pinned by tests.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from dockd.errors import ConfigError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("auto", "keyvalue", "json", "console", "journald")

# syslog(3) priorities, as journald's PRIORITY field wants them.
PRIORITIES = {
    "debug": 7,
    "info": 6,
    "notice": 5,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
}
SYSLOG_IDENTIFIER = "dockd"
FIELD_PREFIX = "DOCKD_"
# journald refuses field names over 64 characters.
_MAX_FIELD_NAME = 64
# Keys that journald has its own fields for, or that go into MESSAGE.
_NOT_FIELDS = frozenset({"event", "level", "timestamp"})

JournalSender = Callable[[Mapping[str, str]], None]


# -- the journald mapping (pure) -------------------------------------------------------


def field_name(key: str) -> str:
    """The journal field for an event key: DOCKD_ + the key in [A-Z0-9_].

    Any other character becomes "_" ("sha-256" -> DOCKD_SHA_256); the prefix
    keeps names from starting with "_" (trusted fields) or a digit.
    """
    cleaned = re.sub(r"[^A-Z0-9_]", "_", key.upper())
    return (FIELD_PREFIX + cleaned)[:_MAX_FIELD_NAME]


def field_value(value: Any) -> str:
    """A value as journal text: strings as they are, containers as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return json.dumps(
            sorted(value, key=str) if isinstance(value, set | frozenset) else value,
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
    return str(value)


_message_pairs = structlog.processors.KeyValueRenderer(sort_keys=False)


def journald_fields(event_dict: Mapping[str, Any]) -> dict[str, str]:
    """The journal entry for one structlog event (after add_log_level).

    MESSAGE is the event name and its fields as key=value text (what
    `journalctl` shows); a traceback (key "exception") follows on new lines.
    Two keys that clean to the same name: the later one wins.
    """
    event = str(event_dict.get("event", ""))
    level = str(event_dict.get("level", "info"))
    rest = {k: v for k, v in event_dict.items() if k not in _NOT_FIELDS and k != "exception"}
    message = event
    if rest:
        message += " " + str(_message_pairs(None, "", dict(rest)))
    if "exception" in event_dict:
        message += "\n" + str(event_dict["exception"])
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(PRIORITIES.get(level, 6)),
        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
        "DOCKD_EVENT": event,
    }
    for key, value in event_dict.items():
        if key not in _NOT_FIELDS:
            fields[field_name(key)] = field_value(value)
    return fields


def journald_renderer(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> tuple[tuple[dict[str, str]], dict[str, Any]]:
    """structlog's last processor for journald: hands the fields to JournaldLogger."""
    return (journald_fields(event_dict),), {}


# -- sending -------------------------------------------------------------------------


def send_to_journal(fields: Mapping[str, str]) -> None:
    """Send one entry over journald's native socket (raises OSError without one).

    sendv, not send: send() would add CODE_FILE/CODE_LINE of this function,
    which say nothing about where the event happened.
    """
    from systemd.journal import sendv

    sendv(*(f"{key}={value}" for key, value in fields.items()))


class JournaldLogger:
    """A structlog logger that writes journal entries.

    If the journal cannot be reached (socket gone, journald restarting), the
    entry's MESSAGE goes to `fallback` instead: a log call never raises into
    the ingest that made it, and nothing is silently dropped.
    """

    def __init__(self, sender: JournalSender, fallback: TextIO) -> None:
        self._sender = sender
        self._fallback = fallback

    def msg(self, fields: Mapping[str, str]) -> None:
        try:
            self._sender(fields)
        except OSError as exc:
            try:
                self._fallback.write(
                    f"<{fields.get('PRIORITY', '6')}>{fields.get('MESSAGE', '')}"
                    f" (journal unreachable: {exc})\n"
                )
                self._fallback.flush()
            except (OSError, ValueError):
                pass  # no journal and no stderr: nowhere left to say it

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class JournaldLoggerFactory:
    def __init__(self, sender: JournalSender, fallback: TextIO) -> None:
        self._logger = JournaldLogger(sender, fallback)

    def __call__(self, *args: Any) -> JournaldLogger:
        return self._logger


# -- choosing the format ---------------------------------------------------------------


def stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True if `stream` is the journal stream systemd connected (JOURNAL_STREAM).

    systemd.exec(5): JOURNAL_STREAM is "<device>:<inode>" of the stream, in
    decimal. It is inherited by children whose stderr goes elsewhere, so the
    numbers must match the stream's own, not merely exist.
    """
    value = environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False  # no file descriptor (a StringIO, a closed stream)
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def resolve_format(fmt: str, stream: TextIO, environ: Mapping[str, str]) -> str:
    """The concrete format for `fmt` ("auto" picks one; the others are kept)."""
    if fmt not in FORMATS:
        raise ConfigError(f"log.format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    if stream_is_journal(stream, environ):
        return "journald"
    if _isatty(stream):
        return "console"
    return "keyvalue"


# -- set-up --------------------------------------------------------------------------


def configure(
    level: str = "info",
    fmt: str = "keyvalue",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    sender: JournalSender | None = None,
) -> str:
    """Set up structlog for the whole process; return the format chosen.

    `stream` (default: stderr), `environ` (default: os.environ) and `sender`
    (default: the journal socket) are injectable for tests.
    """
    if level not in LEVELS:
        raise ConfigError(f"log.level: must be one of {', '.join(LEVELS)}, got {level!r}")
    out = stream if stream is not None else sys.stderr
    chosen = resolve_format(fmt, out, os.environ if environ is None else environ)
    processors: list[Processor] = [structlog.processors.add_log_level]
    logger_factory: Callable[..., Any]
    if chosen == "journald":
        # No timestamp: journald stamps every entry itself (realtime and monotonic).
        processors += [structlog.processors.format_exc_info, journald_renderer]
        logger_factory = JournaldLoggerFactory(sender or send_to_journal, out)
    else:
        processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
        if chosen == "json":
            processors += [
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=True),
            ]
        elif chosen == "console":
            colors = _isatty(out)
            processors.append(
                structlog.dev.ConsoleRenderer(
                    colors=colors,
                    exception_formatter=(
                        structlog.dev.RichTracebackFormatter(show_locals=False)
                        if colors
                        else structlog.dev.plain_traceback
                    ),
                )
            )
        else:
            processors += [
                structlog.processors.format_exc_info,
                structlog.processors.KeyValueRenderer(
                    key_order=["timestamp", "level", "event"], drop_missing=True
                ),
            ]
        logger_factory = structlog.PrintLoggerFactory(file=out)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=logger_factory,
        cache_logger_on_first_use=False,
    )
    return chosen
