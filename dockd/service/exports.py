"""Archival discs (seed rule R5): export plans, builds, burns, disc checks against the catalog."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from dockd.archive.bag import (
    ArchiveError,
    PayloadFile,
    bag_info,
    bag_path_for,
    disc_tag_files,
    write_bag,
)
from dockd.archive.check import verify_disc
from dockd.archive.iso import build_iso
from dockd.archive.plan import DiscPlan, Item, disc_label, items_of, site_code
from dockd.archive.readme import readme_bytes
from dockd.catalog import Recording
from dockd.clock import isoformat_utc
from dockd.errors import UsageError
from dockd.integrity.merkle import inclusion_proof
from dockd.progress import NULL_METER, Meter
from dockd.service.base import ServiceBase, _b64, _clean
from dockd.store import hash_file

log = structlog.get_logger("dockd.service")


class Exports(ServiceBase):
    """Export plans, builds, resumes, burns, disc checks against the catalog."""

    # -- archival discs (seed rule R5) ----------------------------------------------------

    def export_items(
        self,
        *,
        tier: str | None = "permanent",
        cases: tuple[str, ...] = (),
        not_exported: bool = False,
    ) -> list[Item]:
        """The recordings an export would take: live, of `tier` (None: any), of `cases`."""
        rows = self.catalog.export_candidates(tier=tier, cases=cases, not_exported=not_exported)
        return items_of(rows)

    def create_export(
        self,
        disc_plan: DiscPlan,
        selection: dict[str, Any],
        *,
        approved_by: str,
        reason: str,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Record an approved export and its discs (R6: a copy needs approval), before any I/O."""
        approved_by = _clean(approved_by, "--approved-by")
        reason = _clean(reason, "--reason")
        if not disc_plan.discs:
            raise UsageError("nothing to export: the selection is empty")
        now = self.clock.now()
        with self.catalog.transaction():
            export_id = self.catalog.next_id("exports")
            discs = [
                {
                    "label": disc_label(site_code(self.origin), export_id, d.number, d.copy),
                    **d.as_json(),
                }
                for d in disc_plan.discs
            ]
            entry = self._log(
                "export.planned",
                {
                    "export": export_id,
                    "medium": disc_plan.medium.name,
                    "capacity": disc_plan.medium.capacity,
                    "copies": disc_plan.copies,
                    "selection": selection,
                    "discs": [{"label": d["label"], "recordings": d["recordings"]} for d in discs],
                    "approved_by": approved_by,
                    "reason": reason,
                    "by": actor,
                },
                now,
            )
            self.catalog.insert_export(
                {
                    "id": export_id,
                    "created_at": isoformat_utc(now),
                    "medium": disc_plan.medium.name,
                    "capacity": disc_plan.medium.capacity,
                    "copies": disc_plan.copies,
                    "selection": selection,
                    "approved_by": approved_by,
                    "reason": reason,
                    "by": actor,
                    "log_seq": entry.seq,
                }
            )
            for d in disc_plan.discs:
                label = disc_label(site_code(self.origin), export_id, d.number, d.copy)
                self.catalog.insert_disc(label, export_id, d.number, d.copy, d.recordings)
        log.info("export.planned", export=export_id, discs=len(discs), entry=entry.seq)
        return {"export": export_id, "discs": discs, "log_entry": entry.seq}

    def discs(self, export_id: int | None = None) -> list[dict[str, Any]]:
        return self.catalog.discs(export_id)

    def build_disc(
        self,
        label: str,
        out_dir: Path,
        on_bytes: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Build one disc's ISO image in `out_dir`; a disc already built is only re-checked.

        The staged bag is hard-linked from the store and validated by
        re-hashing before the image is made; the image appears under its
        final name only when complete (iso.build_iso), and only then is the
        disc recorded, with the image's SHA-256, in the catalog and the log.
        """
        matching = [d for d in self.discs() if d["label"] == label]
        if not matching:
            raise UsageError(f"no disc {label!r} (dockd export list)")
        disc = matching[0]
        image = out_dir / f"{label}.iso"
        if disc["image_sha256"] and image.exists():
            digest, size = hash_file(image, self.config.ingest.buffer_size)
            if digest == disc["image_sha256"]:
                return {"label": label, "image": str(image), "sha256": digest, "built": False}
        recordings = self.catalog.recordings_by_id(disc["recordings"])
        gone = [r.id for r in recordings if r.deleted]
        if gone:
            raise UsageError(f"recordings {gone} of {label} were deleted by the retention sweep")
        self.checkpoint()
        tag_files, payload, info = self._disc_contents(label, disc, recordings)
        staging = out_dir / f".{label}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            write_bag(staging, payload, tag_files, info)
            if on_bytes:
                on_bytes(sum(p.size for p in payload))
            # What a clerk's verify.py will say, asked before the image exists.
            keys = [k.to_text() for k in self.trusted_keys()]
            staged = verify_disc(staging, keys)
            if not staged.ok:
                raise ArchiveError(
                    f"disc {label} would not verify: "
                    + "; ".join(str(p) for p in staged.problems[:5])
                )
            build_iso(staging, image, label)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        digest, size = hash_file(image, self.config.ingest.buffer_size)
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "export.disc_built",
                {
                    "export": disc["export_id"],
                    "label": label,
                    "image_sha256": digest,
                    "image_size": size,
                    "recordings": disc["recordings"],
                    "by": actor,
                },
                now,
            )
            self.catalog.record_disc_build(
                label,
                image_sha256=digest,
                image_size=size,
                built_at=isoformat_utc(now),
                log_seq=entry.seq,
                bag_paths={r.id: p.bag_path for r, p in zip(recordings, payload, strict=True)},
            )
        log.info("export.disc_built", label=label, sha256=digest, size=size, entry=entry.seq)
        return {"label": label, "image": str(image), "sha256": digest, "built": True}

    def burn_disc(
        self,
        label: str,
        images: Path,
        drive: str,
        *,
        burn: Callable[[Path, str], None],
        read_back: Callable[[str, int], str],
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Burn a built disc, read the medium back, compare with the image; log the outcome."""
        matching = [d for d in self.discs() if d["label"] == label]
        if not matching or not matching[0]["image_sha256"]:
            raise UsageError(f"disc {label!r} is not built (dockd export build / resume)")
        disc = matching[0]
        image = images / f"{label}.iso"
        digest, size = hash_file(image, self.config.ingest.buffer_size)
        if digest != disc["image_sha256"]:
            raise UsageError(
                f"{image} hashes to {digest}, not to the image built for {label} "
                f"({disc['image_sha256']}); rebuild it (dockd export resume)"
            )
        burn(image, drive)
        found = read_back(drive, size)
        ok = found == digest
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "export.disc_burned",
                {
                    "label": label,
                    "drive": drive,
                    "image_sha256": digest,
                    "read_back_sha256": found,
                    "ok": ok,
                    "by": actor,
                },
                now,
            )
            if ok:
                self.catalog.record_disc_burn(
                    label, burned_at=isoformat_utc(now), drive=drive, log_seq=entry.seq
                )
        (log.info if ok else log.error)("export.disc_burned", label=label, drive=drive, ok=ok)
        return {"label": label, "drive": drive, "ok": ok, "read_back_sha256": found,
                "image_sha256": digest, "log_entry": entry.seq}  # fmt: skip

    def check_disc_against_catalog(
        self, report: Any, path: Path, progress: Meter = NULL_METER
    ) -> list[dict[str, str]]:
        """Does the disc hold what the catalog says this label holds, byte for byte?

        `progress` hears of the image's bytes as they are hashed.
        """
        where = f"disc {report.label}"
        matching = [d for d in self.discs() if d["label"] == report.label]
        if not matching:
            return [{"kind": "catalog_unknown_disc", "where": where,
                     "detail": "this catalog made no disc with this label"}]  # fmt: skip
        disc = matching[0]
        problems: list[dict[str, str]] = []
        expected = {r.id: r for r in self.catalog.recordings_by_id(disc["recordings"])}
        found = {r.recording_id: r for r in report.recordings if r.recording_id is not None}
        for rid in sorted(set(expected) - set(found)):
            problems.append({"kind": "catalog_recording_missing", "where": where,
                             "detail": f"recording {rid} should be on this disc"})  # fmt: skip
        for rid in sorted(set(found) - set(expected)):
            problems.append({"kind": "catalog_recording_extra", "where": where,
                             "detail": f"recording {rid} is not listed for this disc"})  # fmt: skip
        for rid in sorted(set(found) & set(expected)):
            if found[rid].sha256 != expected[rid].sha256:
                problems.append(
                    {"kind": "catalog_hash_mismatch", "where": found[rid].bag_path,
                     "detail": f"SHA-256 {found[rid].sha256}, the catalog proved "
                               f"{expected[rid].sha256} for recording {rid}"}
                )  # fmt: skip
        if path.is_file() and disc["image_sha256"]:
            # A disc read back into a file may run on past the image (padding).
            progress.stage("hashing the image against the catalog", int(disc["image_size"]))
            digest = _sha256_prefix(path, int(disc["image_size"]), progress=progress)
            if digest != disc["image_sha256"]:
                problems.append(
                    {"kind": "catalog_image_changed", "where": str(path),
                     "detail": f"the image hashes to {digest}, built as {disc['image_sha256']}"}
                )  # fmt: skip
        return problems

    def _export(self, export_id: int) -> dict[str, Any]:
        row = self.catalog.export(export_id)
        if row is None:
            raise UsageError(f"no export {export_id} (dockd export list)")
        return row

    def exports(self) -> list[dict[str, Any]]:
        return [{**e, "discs": self.discs(int(e["id"]))} for e in self.catalog.exports()]

    def _discs_per_copy(self, export_id: int) -> int:
        return self.catalog.discs_per_copy(export_id)

    def _disc_contents(
        self, label: str, disc: dict[str, Any], recordings: list[Recording]
    ) -> tuple[dict[str, bytes], list[PayloadFile], dict[str, str]]:
        """Tag files and payload of one disc (dockd/archive/__init__.py: the disc layout).

        The entries are each recording's ingest entry and the tag and case
        entries naming it, each with its inclusion proof against the newest
        checkpoint, which this disc carries with the keys that sign it.
        """
        ids = {r.id for r in recordings}
        seqs = {r.log_seq for r in recordings}
        # Only the kinds that name recordings (the log(kind) index), not the whole log.
        naming = {
            "recording.tagged": "recordings",
            "case.linked": "recordings",
            "device.assigned": "reattributed",
        }
        for seq, kind, raw in self.catalog.entries_of_kinds(tuple(naming)):
            data = json.loads(raw)["data"]
            if ids & set(data.get(naming[kind]) or []):
                seqs.add(seq)
        checkpoint = self._covering_checkpoint(max(seqs))
        tree_size = int(checkpoint["size"])
        zone = ZoneInfo(self.config.profiles.camera_timezone)
        extract: list[dict[str, Any]] = []
        payload: list[PayloadFile] = []
        for r in recordings:
            record = {**r.as_json(), "cases": self.catalog.cases_of(r.id)}
            record["bag_path"] = bag_path_for(record, zone)
            extract.append(record)
            payload.append(
                PayloadFile(self.store.object_path(r.sha256), record["bag_path"], r.sha256, r.size)
            )
        export = self._export(int(disc["export_id"]))
        info = bag_info(
            origin=self.origin,
            label=label,
            disc=int(disc["number"]),
            discs=self._discs_per_copy(int(disc["export_id"])),
            export_id=f"dockd export {disc['export_id']}",
            copy=int(disc["copy"]),
            copies=int(export["copies"]),
            bagging_date=self.clock.now().date().isoformat(),
            description=f"approved by {export['approved_by']}: {export['reason']}",
        )
        tag_files = disc_tag_files(
            recordings=extract,
            entries=[self.catalog.log_entry(s) or b"" for s in sorted(seqs)],
            tree_size=tree_size,
            proofs={
                s: [_b64(h) for h in inclusion_proof(self.catalog.node, s - 1, tree_size)]
                for s in sorted(seqs)
            },
            checkpoint=str(checkpoint["note"]),
            keys=[k.to_text() for k in self.trusted_keys()],
            readme=readme_bytes(
                label,
                {**info, "Payload-Oxum": f"{sum(p.size for p in payload)}.{len(payload)}"},
            ),
        )
        return tag_files, payload, info


def _sha256_prefix(
    path: Path, size: int, block: int = 1 << 20, progress: Meter = NULL_METER
) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left > 0:
            chunk = f.read(min(block, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
            progress.advance(len(chunk))
    return digest.hexdigest()
