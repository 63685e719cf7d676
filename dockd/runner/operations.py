"""Changes a person may ask for, by name, with JSON arguments.

One table serves both ways a change reaches the Service: the running
daemon's socket (api.py, the caller's uid as actor) and the CLI when no
daemon runs (the local user as actor). Arguments are checked here, so a
malformed request gets the same clear error either way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dockd.catalog import RecordingFilter
from dockd.errors import ConfigError
from dockd.service import Service

Operation = Callable[[Service, dict[str, Any], str | None], Any]


def _ids(args: dict[str, Any], key: str = "ids") -> list[int]:
    value = args.get(key)
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ConfigError(f"{key}: expected a list of recording ids")
    return value


def _text(args: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string")
    return value


def _texts(args: dict[str, Any], key: str) -> tuple[str, ...]:
    value = args.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings")
    return tuple(value)


def _int(args: dict[str, Any], key: str, required: bool = True) -> int | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer")
    return value


def _moment(args: dict[str, Any], key: str) -> datetime | None:
    """An ISO 8601 time with its offset; a naive one is refused (invariant 7)."""
    value = args.get(key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{key}: not a time: {value!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{key}: time without a UTC offset: {value!r} (add Z or +08:00)")
    return moment.astimezone(UTC)


def recording_filter(value: Any) -> RecordingFilter:
    """A RecordingFilter from its JSON form (RecordingFilter.as_json)."""
    if value is None:
        return RecordingFilter()
    if not isinstance(value, dict):
        raise ConfigError("filters: expected an object")
    fields = set(RecordingFilter.__dataclass_fields__)
    unknown = set(value) - fields
    if unknown:
        raise ConfigError(f"filters: unknown {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    return RecordingFilter(**values)


def _spot_check(s: Service, a: dict[str, Any], actor: str | None) -> Any:
    chosen = recording_filter(a.get("filters"))
    ids = None
    if chosen != RecordingFilter():
        ids = [r.id for r in s.catalog.search(chosen) if not r.deleted]
    return s.spot_check(
        _int(a, "sample") or 0,
        seed=_int(a, "seed", required=False),
        ids=ids,
        filters=chosen.as_json(),
        actor=actor,
    )


def _required(args: dict[str, Any], key: str) -> str:
    value = _text(args, key, required=True)
    assert value is not None
    return value


def _assign(s: Service, a: dict[str, Any], actor: str | None) -> Any:
    serial = a.get("serial")
    if not isinstance(serial, str):
        raise ConfigError("device.assign needs a serial")
    assignment, changed = s.assign_device(
        serial,
        officer=_text(a, "officer"),
        unit=_text(a, "unit"),
        device_number=_text(a, "device_number"),
        valid_from=_moment(a, "valid_from"),
        valid_to=_moment(a, "valid_to"),
        reason=_text(a, "reason"),
        actor=actor,
    )
    return {"assignment": assignment.as_json(), "reattributed": changed}


OPERATIONS: dict[str, Operation] = {
    "device.assign": _assign,
    "tag": lambda s, a, actor: s.tag(
        _ids(a),
        cause=_text(a, "cause"),
        parties=_texts(a, "parties"),
        categories=_texts(a, "categories"),
        remove_categories=_texts(a, "remove_categories"),
        note=_text(a, "note"),
        reason=_text(a, "reason"),
        actor=actor,
    ),
    "case.create": lambda s, a, actor: s.create_case(
        _required(a, "case"),
        cause=_required(a, "cause"),
        parties=_texts(a, "parties"),
        categories=_texts(a, "categories"),
        actor=actor,
    ),
    "case.link": lambda s, a, actor: s.link_case(
        _required(a, "case"), _ids(a), reason=_text(a, "reason"), actor=actor
    ),
    "case.unlink": lambda s, a, actor: s.unlink_case(
        _required(a, "case"), _ids(a), reason=_required(a, "reason"), actor=actor
    ),
    "case.close": lambda s, a, actor: s.set_case_state(
        _required(a, "case"), "closed", reason=_required(a, "reason"), actor=actor
    ),
    "case.reopen": lambda s, a, actor: s.set_case_state(
        _required(a, "case"), "open", reason=_required(a, "reason"), actor=actor
    ),
    "hold.set": lambda s, a, actor: s.set_hold(
        case=_text(a, "case"),
        ids=_ids(a) if a.get("ids") else None,
        reason=_required(a, "reason"),
        actor=actor,
    ),
    "hold.release": lambda s, a, actor: s.release_hold(
        _int(a, "hold") or 0, reason=_required(a, "reason"), actor=actor
    ),
    "retention.sweep": lambda s, a, actor: s.sweep(
        _moment(a, "as_of"), dry_run=bool(a.get("dry_run")), actor=actor
    ).summary(),
    "retention.restore": lambda s, a, actor: s.restore(
        _int(a, "recording") or 0, reason=_required(a, "reason"), actor=actor
    ),
    "report.spot_check": _spot_check,
    "gap.explain": lambda s, a, actor: s.explain_gap(
        _required(a, "gap"), _required(a, "text"), actor=actor
    ),
}


def checkpoint_json(service: Service) -> dict[str, Any]:
    """Sign a checkpoint now; with the keys that verify it (CLI and socket alike)."""
    note = service.checkpoint()
    return {"checkpoint": note, "keys": [k.to_text() for k in service.trusted_keys()]}


def perform(service: Service, op: str, args: dict[str, Any], actor: str | None) -> Any:
    operation = OPERATIONS.get(op)
    if operation is None:
        raise ConfigError(f"unknown request {op!r}")
    return operation(service, args, actor)
