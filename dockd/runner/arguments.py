"""The arguments of a request (runner/operations.py), checked: clear errors, either way in.

A request's arguments are JSON (from the socket, or built by the CLI); each
helper takes one by name and refuses a wrong type with the name in the
message, so that a malformed request gets the same error by either path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockd.catalog import RecordingFilter
from dockd.clock import parse_time
from dockd.errors import UsageError


def ids_of(args: dict[str, Any], key: str = "ids") -> list[int]:
    value = args.get(key)
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise UsageError(f"{key}: expected a list of recording ids")
    return value


def text_of(args: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{key}: expected a string")
    return value


def texts_of(args: dict[str, Any], key: str) -> tuple[str, ...]:
    value = args.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key}: expected a list of strings")
    return tuple(value)


def int_of(args: dict[str, Any], key: str, required: bool = True) -> int | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{key}: expected an integer")
    return value


def moment_of(args: dict[str, Any], key: str) -> datetime | None:
    """A time of a request: clock.parse_time's rule, the CLI's too (no offset = UTC)."""
    value = args.get(key)
    return None if value is None else parse_time(value, key)


def recording_filter(value: Any) -> RecordingFilter:
    """A RecordingFilter from its JSON form (RecordingFilter.as_json)."""
    if value is None:
        return RecordingFilter()
    if not isinstance(value, dict):
        raise UsageError("filters: expected an object")
    fields = set(RecordingFilter.__dataclass_fields__)
    unknown = set(value) - fields
    if unknown:
        raise UsageError(f"filters: unknown {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    return RecordingFilter(**values)


def required_of(args: dict[str, Any], key: str) -> str:
    value = text_of(args, key, required=True)
    assert value is not None
    return value


# -- what each request takes: declared once, checked, and described (runner/openapi.py)

# The JSON Schema of each argument type a declaration may name.
ARG_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "ids": {"type": "array", "items": {"type": "integer"}, "description": "recording ids"},
    "strs": {"type": "array", "items": {"type": "string"}},
    "time": {
        "type": "string",
        "description": "ISO 8601; a time without an offset is UTC",
        "examples": ["2026-11-30T08:00:00Z"],
    },
    "path": {"type": "string", "description": "an absolute path on the dock"},
    "object": {"type": "object"},
    "any": {},
}


@dataclass(frozen=True)
class Arg:
    name: str
    type: str = "str"
    required: bool = False


@dataclass(frozen=True)
class Signature:
    """What a request does (one line, for the OpenAPI description) and the arguments it
    takes. An argument it does not declare is refused, by the daemon and the CLI alike,
    so a misspelt option never passes silently; types are the helpers' above to check."""

    summary: str
    args: tuple[Arg, ...] = ()

    def check(self, op: str, given: dict[str, Any]) -> None:
        if not isinstance(given, dict):
            raise UsageError(f"{op}: the arguments must be a JSON object")
        known = {a.name for a in self.args}
        unknown = sorted(set(given) - known)
        if unknown:
            takes = ", ".join(sorted(known)) or "no arguments"
            raise UsageError(
                f"{op}: unknown argument {', '.join(unknown)} (it takes {takes})",
                field=unknown[0],
            )


def signature(summary: str, spec: str = "") -> Signature:
    """A Signature from "name!:type name:type …" ("!" required, the type "str" by default):
    short enough to sit beside each entry of the request table."""
    args = []
    for word in spec.split():
        name, _, kind = word.partition(":")
        required = name.endswith("!")
        name = name.rstrip("!")
        kind = kind or "str"
        if kind not in ARG_TYPES:
            raise ValueError(f"{word}: unknown argument type {kind!r}")
        args.append(Arg(name, kind, required))
    return Signature(summary, tuple(args))
