"""Canonical JSON: one value, one byte string (the log's hashes depend on it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockd.errors import VerifyError
from dockd.integrity.canonical import canonical_json, parse_canonical

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_known_bytes() -> None:
    value = {"b": [1, True, None], "a": "中文", "c": {"z": "", "y": -1}}
    assert canonical_json(value) == '{"a":"中文","b":[1,true,null],"c":{"y":-1,"z":""}}'.encode()


@given(json_values)
def test_round_trip_is_identity(value: Any) -> None:
    raw = canonical_json(value)
    assert parse_canonical(raw) == value
    assert canonical_json(json.loads(raw)) == raw


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=2, max_size=6))
def test_key_order_does_not_matter(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(value) == canonical_json(reordered)


@pytest.mark.parametrize(
    "bad", [1.5, float("nan"), {"x": 0.1}, {1: "x"}, b"bytes", "\udcff", {"s": {1, 2}}]
)
def test_unencodable_values_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


@pytest.mark.parametrize(
    "raw",
    [b'{"b":1, "a":2}', b'{"b":1,"a":2}', b'{"a":1.0}', b"\xff", b"not json", b'{"a":"\\u00e9"}'],
)
def test_non_canonical_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(VerifyError):
        parse_canonical(raw)
