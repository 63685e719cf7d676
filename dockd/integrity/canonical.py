"""Canonical JSON for log entries.

Format (DESIGN §5): keys sorted, UTF-8, separators without spaces, no
floats (their text form is not canonical across implementations), no NaN.
The same value always gives the same bytes, so the bytes can be hashed.
"""

from __future__ import annotations

import json
from typing import Any

from dockd.errors import VerifyError

JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"{path}: string is not valid Unicode ({exc.reason})") from None
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not allowed in canonical JSON")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: key {key!r} is not a string")
            _check(item, f"{path}.{key}")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """Encode `value` canonically. Raises ValueError on anything not encodable."""
    _check(value, "$")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def parse_canonical(data: bytes) -> Any:
    """Decode canonical JSON, refusing bytes that are not in canonical form."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyError(f"not valid JSON: {exc}") from None
    try:
        again = canonical_json(value)
    except ValueError as exc:
        raise VerifyError(f"not canonical JSON: {exc}") from None
    if again != data:
        raise VerifyError("JSON is not in canonical form")
    return value
