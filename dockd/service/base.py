"""What every part of the Service shares: its state, and the few helpers all need.

Each stage module (ledger, docking, registry, labels, retention, exports,
fixity) holds one mixin class over `ServiceBase`; `dockd.service.Service`
composes them. The methods one part calls on another are declared here for
the type checker only, so that each part is checked on its own.
"""

from __future__ import annotations

import base64
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.catalog import Catalog, Recording
from dockd.clock import Clock
from dockd.config import Config
from dockd.errors import UsageError
from dockd.ingest.prober import Prober
from dockd.integrity.chain import LogEntry
from dockd.integrity.note import VerifierKey
from dockd.retention.policy import Policy
from dockd.service.results import Disc, Moved
from dockd.store import Store

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from dockd.devices.identity import DeviceIdentity
    from dockd.progress import Meter
    from dockd.replicate.status import ReplicationStatus
    from dockd.service.results import PackageWritten


class ServiceBase:
    """The state the parts share; set by `Service.__init__`."""

    config: Config
    clock: Clock
    state_dir: Path
    store: Store
    catalog: Catalog
    # The log's origin line, in checkpoints and signing-key names.
    origin: str
    # The signing key and its public key; None for a reading Service (and once closed).
    _signer: tuple[Ed25519PrivateKey, VerifierKey] | None
    _lock_fd: int
    # Set when a recording's retention moved: replicated locks may have to grow.
    _extend_due: threading.Event
    # The dock's probe workers, shared by its sessions (started on first use).
    _prober: Prober

    if TYPE_CHECKING:
        # Defined by the part named; declared here so that the others may call them.

        # ledger.py
        def _log(
            self, kind: str, data: dict[str, Any], moment: datetime | None = None
        ) -> LogEntry: ...

        def checkpoint(self) -> str: ...

        def trusted_keys(self) -> list[VerifierKey]: ...

        def log_grew(self) -> bool: ...

        def _covering_checkpoint(self, size: int) -> dict[str, Any]: ...

        # replication.py (each: nothing unless replication is on)
        def _queue_object(self, sha256: str, size: int) -> int: ...

        def _queue_key(self, key_id: str) -> int: ...

        def _queue_checkpoint(self, size: int) -> int: ...

        def _queue_session(self, session_id: int) -> int: ...

        def replication_prefix(self) -> str: ...

        def replication_status(self) -> ReplicationStatus: ...

        # registry.py
        def _register_device(
            self, serial: str, profile: str, device: DeviceIdentity | None, now: datetime
        ) -> None: ...

        # labels.py
        def _existing(self, ids: list[int]) -> list[Recording]: ...

        # retention.py
        @property
        def policy(self) -> Policy: ...

        def _update_retention(
            self, ids: list[int] | None, reason: str, trigger: int | None, actor: str | None
        ) -> Moved: ...

        # exports.py
        def discs(self, export_id: int | None = None) -> list[Disc]: ...

        def write_copy_package(
            self,
            ids: Sequence[int],
            out: Path,
            *,
            purpose: str,
            for_party: str | None,
            request_id: int | None,
            actor: str | None,
            progress: Meter = ...,
        ) -> PackageWritten: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _clean(text: str, field: str) -> str:
    """The request's `field` as given, stripped; empty or control characters are refused."""
    value = text.strip()
    if not value:
        raise UsageError(f"{field}: must not be empty", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"{field}: control characters are not allowed: {text!r}", field=field)
    if len(value) > 1000:
        raise UsageError(f"{field}: longer than 1000 characters", field=field)
    return value
