"""One finding of `dockd doctor`, and the two ways to make one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Check:
    """One finding. `ok` checks carry severity "info"; `fix` is empty when ok."""

    name: str
    ok: bool
    severity: Severity
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _pass(name: str, detail: str) -> Check:
    return Check(name, True, "info", detail)


def _fail(name: str, severity: Severity, detail: str, fix: str) -> Check:
    return Check(name, False, severity, detail, fix)
