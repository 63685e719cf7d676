"""The API's description is generated from the tables, shipped current, and holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockd.access.roles import PERMISSIONS
from dockd.errors import UsageError
from dockd.runner.arguments import signature
from dockd.runner.client import API_PREFIX
from dockd.runner.openapi import openapi_document, openapi_text
from dockd.runner.operations import OPERATIONS, perform
from dockd.service import Service

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_shipped_description_is_the_generated_one() -> None:
    assert DOCS.read_text("utf-8") == openapi_text(), "run `make openapi` and commit"


def test_every_operation_is_described_with_its_roles_and_arguments() -> None:
    paths = openapi_document()["paths"]
    ops = {p.removeprefix(API_PREFIX) for p in paths if p.startswith(API_PREFIX)}
    assert ops == set(OPERATIONS)
    for name, entry in OPERATIONS.items():
        post = paths[API_PREFIX + name]["post"]
        assert post["summary"] == entry.signature.summary and post["summary"]
        assert post["x-dockd-roles"] == sorted(PERMISSIONS[name])
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body["additionalProperties"] is False
        assert set(body["properties"]) == {a.name for a in entry.signature.args}
        assert set(body.get("required", ())) == {a.name for a in entry.signature.args if a.required}
    tag = paths[API_PREFIX + "tag"]["post"]["requestBody"]["content"]["application/json"]
    assert tag["schema"]["properties"]["ids"]["items"] == {"type": "integer"}
    assert tag["schema"]["properties"]["cause"]["type"] == ["string", "null"]


def test_every_error_status_is_described() -> None:
    doc = openapi_document()
    responses = doc["components"]["responses"]
    for status in ("400", "403", "404", "422", "500", "503"):
        assert f"Error{status}" in responses
    refs = doc["paths"][API_PREFIX + "status"]["post"]["responses"]
    assert all(
        r == {"$ref": f"#/components/responses/Error{s}"} for s, r in refs.items() if s != "200"
    )
    json.dumps(doc)  # JSON through and through


def test_an_undeclared_argument_is_refused_with_what_it_takes() -> None:
    sig = signature("x", "case! ids:ids reason")
    sig.check("case.link", {"case": "A", "ids": [1], "reason": None})
    with pytest.raises(UsageError) as info:
        sig.check("case.link", {"case": "A", "resaon": "typo"})
    assert info.value.field == "resaon"
    assert str(info.value) == "case.link: unknown argument resaon (it takes case, ids, reason)"
    with pytest.raises(UsageError, match="must be a JSON object"):
        sig.check("case.link", [1])  # type: ignore[arg-type]


def test_a_declaration_names_known_types_only() -> None:
    with pytest.raises(ValueError, match="unknown argument type 'date'"):
        signature("x", "when:date")


def test_local_runs_check_the_declaration_too(service: Service) -> None:
    # Without the daemon (root's CLI) a misspelt argument is refused the same way.
    args: dict[str, Any] = {"ids": [1], "cuase": "theft"}
    with pytest.raises(UsageError, match="tag: unknown argument cuase"):
        perform(service, "tag", args, "root")
