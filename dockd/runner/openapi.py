"""The OpenAPI 3.1 description of the daemon's API, generated from the two tables.

Every entry of the request table (operations.py: what it does, the arguments
it takes, whether it is long) and of the permission table (access/roles.py:
who may ask) becomes one `POST /v1/ops/<op>`. Nothing here is written by
hand per operation, so the description cannot drift from what the daemon
does; docs/openapi.json is this document (`make openapi` writes it, and a
test checks the shipped file is current).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dockd import __version__
from dockd.access.roles import PERMISSIONS
from dockd.runner.api import (
    ERROR_STATUS,
    INTERNAL_STATUS,
    OTHER_STATUS,
    STOPPING_STATUS,
    UNKNOWN_STATUS,
)
from dockd.runner.arguments import ARG_TYPES, Arg
from dockd.runner.client import API_PREFIX, LOGIN_HEADER
from dockd.runner.operations import OPERATIONS, Operation

_ERROR = {
    "type": "object",
    "required": ["error", "exit_code"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, in words"},
        "exit_code": {"type": "integer", "description": "the CLI's exit code for it"},
        "field": {"type": "string", "description": "the argument at fault, when one is"},
    },
}
_WHY = {
    400: "a usage error: an unknown, missing or malformed argument (exit 2)",
    403: "the caller's roles do not allow it, or the connection is not the Unix socket (exit 5)",
    409: "not done yet: e.g. not uploaded, still queued (exit 4)",
    UNKNOWN_STATUS: "no such operation",
    OTHER_STATUS: "refused for what the catalog holds: e.g. no such recording (exit 1)",
    INTERNAL_STATUS: "a bug in dockd (logged as api.failed)",
    STOPPING_STATUS: "the daemon is stopping: ask again when it has restarted",
}
assert set(ERROR_STATUS.values()) <= set(_WHY)


def _schema(arg: Arg) -> dict[str, Any]:
    schema = dict(ARG_TYPES[arg.type])
    if not arg.required and "type" in schema:
        schema["type"] = [schema["type"], "null"]  # an option left out may be sent as null
    return schema


def _operation(name: str, entry: Operation) -> dict[str, Any]:
    roles = sorted(PERMISSIONS.get(name, ()))
    notes = [f"Roles: {', '.join(roles) or 'nobody'} (root holds every role)."]
    if entry.long:
        notes.append("Long: runs in a thread of its own; its progress is in `status`.")
    if entry.daemon_only:
        notes.append("Only the running daemon answers it (the CLI has no local fallback).")
    body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {a.name: _schema(a) for a in entry.signature.args},
    }
    required = [a.name for a in entry.signature.args if a.required]
    if required:
        body["required"] = required
    responses: dict[str, Any] = {
        "200": {
            "description": "done",
            "content": {
                "application/json": {"schema": {"type": "object", "properties": {"result": {}}}}
            },
        }
    }
    for status in sorted(_WHY):
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return {
        "operationId": name,
        "summary": entry.signature.summary,
        "description": " ".join(notes),
        "tags": [name.split(".")[0]],
        "x-dockd-roles": roles,
        "x-dockd-long": entry.long,
        "parameters": [{"$ref": "#/components/parameters/Login"}],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": body}},
        },
        "responses": responses,
    }


def openapi_document() -> dict[str, Any]:
    """The whole description, as a JSON-ready dict (stable: keys sorted when written)."""
    paths: dict[str, Any] = {
        API_PREFIX + name: {"post": _operation(name, entry)}
        for name, entry in sorted(OPERATIONS.items())
    }
    paths["/admin"] = {
        "get": {
            "operationId": "admin",
            "summary": "The compliance page with its charts (HTML; ?lang=en for English)",
            "description": "Roles: those of report.compliance.",
            "responses": {"200": {"description": "the page", "content": {"text/html": {}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dockd",
            "version": __version__,
            "description": (
                "The dockd daemon's API, on its Unix socket (default /run/dockd/dockd.sock; "
                "curl --unix-socket). The caller is who the kernel says connected "
                "(SO_PEERCRED); its roles come from its groups ([access] in dockd.toml). "
                "Each operation takes its arguments as one JSON object. Generated from "
                "dockd's request and permission tables."
            ),
        },
        "servers": [{"url": "http://dockd", "description": "the Unix socket"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "parameters": {
                "Login": {
                    "name": LOGIN_HEADER,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The person behind a root shell (sudo's SUDO_USER); "
                    "taken from root only.",
                }
            },
            "responses": {
                f"Error{status}": {
                    "description": why,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for status, why in sorted(_WHY.items())
            },
        },
    }


def openapi_text() -> str:
    """docs/openapi.json's text: the document, keys sorted, one trailing newline."""
    return json.dumps(openapi_document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # `make openapi`: python -m dockd.runner.openapi > docs/openapi.json
    sys.stdout.write(openapi_text())
