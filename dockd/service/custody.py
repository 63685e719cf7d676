"""The chain-of-custody report of recordings or a case, from the log (R6, R8).

The report itself is pure (access/custody.py: entries, checkpoint, keys and
proofs in; every event about the recordings, each with its inclusion proof,
out). Here it is fed from the catalog: the whole log in order, the newest
checkpoint (a writing service signs one first if the log grew, so that
every event up to now is proven), and inclusion paths from the tree's nodes.
"""

from __future__ import annotations

from collections.abc import Sequence

from dockd.access.custody import CustodyReport, custody_report
from dockd.errors import DockdError, UsageError
from dockd.integrity.merkle import inclusion_proof
from dockd.service.base import ServiceBase


class Custody(ServiceBase):
    """dockd custody ID… | --case NO."""

    def custody(self, ids: Sequence[int] = (), case: str | None = None) -> CustodyReport:
        if bool(ids) == (case is not None):
            raise UsageError("a custody report is of recording ids or of a case (one of the two)")
        if case is not None:
            if self.catalog.case(case) is None:
                raise UsageError(f"no case {case!r} (dockd case list)")
            # The case's recordings as linked now, and the case's own entries.
            ids = sorted({int(link["recording_id"]) for link in self.catalog.case_links(case)})
        elif ids:
            self._existing(list(ids))
        if self._signer is not None and self.log_grew():
            self.checkpoint()
        last = self.catalog.last_checkpoint()
        if last is None:
            raise DockdError("no checkpoint yet: run `dockd checkpoint`")
        size = int(last["size"])
        raw = [row.raw for row in self.catalog.log_rows()]
        return custody_report(
            raw,
            ids,
            case=case,
            proofs=lambda seq: inclusion_proof(self.catalog.node, seq - 1, size),
            checkpoint=str(last["note"]),
            keys=[k.to_text() for k in self.trusted_keys()],
            generated_at=self.clock.now(),
        )
