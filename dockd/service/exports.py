"""Archival discs (seed rule R5): export plans, builds, burns, disc checks against the catalog;
copy packages (a disc's bag in a folder, for a request)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from dockd.archive.bag import (
    ArchiveError,
    PayloadFile,
    bag_info,
    bag_path_for,
    copy_bag_info,
    copy_checked,
    disc_tag_files,
    write_bag,
)
from dockd.archive.check import verify_disc
from dockd.archive.iso import build_iso
from dockd.archive.plan import DiscPlan, Item, disc_label, items_of, site_code
from dockd.archive.readme import copy_readme_bytes, readme_bytes
from dockd.catalog import Recording
from dockd.clock import isoformat_utc
from dockd.errors import DockdError, UsageError
from dockd.integrity import standalone_verify
from dockd.integrity.standalone_verify import ENTRIES, TAGMANIFEST
from dockd.progress import NULL_METER, Meter
from dockd.service.base import ServiceBase, _clean
from dockd.service.ledger import entries_about_recordings, inclusion_paths
from dockd.service.results import (
    Disc,
    DiscBuilt,
    DiscBurned,
    Export,
    ExportCreated,
    PackageWritten,
)
from dockd.store import fsync_dir, hash_file

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
        request: int | None = None,
        actor: str | None = None,
    ) -> ExportCreated:
        """Record an approved export and its discs (R6: a copy needs approval), before any I/O.

        `request` is the approved export request it carries out (access.approved
        names `approved_by`); it is logged with the export."""
        approved_by = _clean(approved_by, "approved_by")
        reason = _clean(reason, "reason")
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
                    **({"request": request} if request is not None else {}),
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
        return ExportCreated(export_id, tuple(discs), entry.seq)

    def discs(self, export_id: int | None = None) -> list[Disc]:
        """The discs of one export, or all, by export, copy, number."""
        return [Disc.from_row(d) for d in self.catalog.discs(export_id)]

    def _disc(self, label: str) -> Disc | None:
        row = self.catalog.disc(label)
        return Disc.from_row(row) if row is not None else None

    def build_disc(
        self,
        label: str,
        out_dir: Path,
        on_bytes: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
    ) -> DiscBuilt:
        """Build one disc's ISO image in `out_dir`; a disc already built is only re-checked.

        The staged bag is hard-linked from the store and validated by
        re-hashing before the image is made; the image appears under its
        final name only when complete (iso.build_iso), and only then is the
        disc recorded, with the image's SHA-256, in the catalog and the log.
        """
        disc = self._disc(label)
        if disc is None:
            raise UsageError(f"no disc {label!r} (dockd export list)")
        image = out_dir / f"{label}.iso"
        if disc.image_sha256 and image.exists():
            digest, size = hash_file(image, self.config.ingest.buffer_size)
            if digest == disc.image_sha256:
                return DiscBuilt(label, str(image), digest, built=False)
        recordings = self.catalog.recordings_by_id(disc.recordings)
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
                    "export": disc.export_id,
                    "label": label,
                    "image_sha256": digest,
                    "image_size": size,
                    "recordings": list(disc.recordings),
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
        return DiscBuilt(label, str(image), digest, built=True)

    def burn_disc(
        self,
        label: str,
        images: Path,
        drive: str,
        *,
        burn: Callable[[Path, str], None],
        read_back: Callable[[str, int], str],
        actor: str | None = None,
    ) -> DiscBurned:
        """Burn a built disc, read the medium back, compare with the image; log the outcome."""
        disc = self._disc(label)
        if disc is None or not disc.image_sha256:
            raise UsageError(f"disc {label!r} is not built (dockd export build / resume)")
        image = images / f"{label}.iso"
        digest, size = hash_file(image, self.config.ingest.buffer_size)
        if digest != disc.image_sha256:
            raise UsageError(
                f"{image} hashes to {digest}, not to the image built for {label} "
                f"({disc.image_sha256}); rebuild it (dockd export resume)"
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
        return DiscBurned(label, drive, ok, found, digest, entry.seq)

    def check_disc_against_catalog(
        self, report: Any, path: Path, progress: Meter = NULL_METER
    ) -> list[dict[str, str]]:
        """Does the disc hold what the catalog says this label holds, byte for byte?

        `progress` hears of the image's bytes as they are hashed.
        """
        where = f"disc {report.label}"
        disc = self._disc(report.label)
        if disc is None:
            return [{"kind": "catalog_unknown_disc", "where": where,
                     "detail": "this catalog made no disc with this label"}]  # fmt: skip
        problems: list[dict[str, str]] = []
        expected = {r.id: r for r in self.catalog.recordings_by_id(disc.recordings)}
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
        if path.is_file() and disc.image_sha256:
            # A disc read back into a file may run on past the image (padding).
            progress.stage("hashing the image against the catalog", disc.image_size or 0)
            digest = _sha256_prefix(path, disc.image_size or 0, progress=progress)
            if digest != disc.image_sha256:
                problems.append(
                    {"kind": "catalog_image_changed", "where": str(path),
                     "detail": f"the image hashes to {digest}, built as {disc.image_sha256}"}
                )  # fmt: skip
        return problems

    def _export(self, export_id: int) -> dict[str, Any]:
        row = self.catalog.export(export_id)
        if row is None:
            raise UsageError(f"no export {export_id} (dockd export list)")
        return row

    def exports(self) -> list[Export]:
        """Every export in id order, with its discs."""
        return [
            Export(**{**e, "discs": tuple(self.discs(int(e["id"])))})
            for e in self.catalog.exports()
        ]

    def _discs_per_copy(self, export_id: int) -> int:
        return self.catalog.discs_per_copy(export_id)

    def _bag_payload(
        self, recordings: list[Recording]
    ) -> tuple[list[dict[str, Any]], list[PayloadFile]]:
        """catalog.json's records (each with its bag_path) and the payload of a bag."""
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
        return extract, payload

    def _bag_tags(
        self, recordings: list[Recording], extract: list[dict[str, Any]], readme: bytes
    ) -> dict[str, bytes]:
        """The tag files of a disc or copy package (dockd/archive/__init__.py: the layout).

        The entries are those about the recordings (dockd/integrity/naming.py,
        the one rule for discs, copies and scoped exports), each with its
        inclusion proof against the newest checkpoint, which the bag carries
        with the keys that sign it.
        """
        seqs = entries_about_recordings(self.catalog, [r.id for r in recordings])
        checkpoint = self._covering_checkpoint(max(seqs))
        tree_size = int(checkpoint["size"])
        return disc_tag_files(
            recordings=extract,
            entries=[self.catalog.log_entry(s) or b"" for s in seqs],
            tree_size=tree_size,
            proofs=inclusion_paths(self.catalog, seqs, tree_size),
            checkpoint=str(checkpoint["note"]),
            keys=[k.to_text() for k in self.trusted_keys()],
            readme=readme,
        )

    def _disc_contents(
        self, label: str, disc: Disc, recordings: list[Recording]
    ) -> tuple[dict[str, bytes], list[PayloadFile], dict[str, str]]:
        """Tag files, payload and bag-info of one disc (dockd/archive/__init__.py)."""
        extract, payload = self._bag_payload(recordings)
        export = self._export(disc.export_id)
        info = bag_info(
            origin=self.origin,
            label=label,
            disc=disc.number,
            discs=self._discs_per_copy(disc.export_id),
            export_id=f"dockd export {disc.export_id}",
            copy=disc.copy,
            copies=int(export["copies"]),
            bagging_date=self.clock.now().date().isoformat(),
            description=f"approved by {export['approved_by']}: {export['reason']}",
        )
        oxum = {**info, "Payload-Oxum": f"{sum(p.size for p in payload)}.{len(payload)}"}
        tag_files = self._bag_tags(recordings, extract, readme_bytes(label, oxum))
        return tag_files, payload, info

    # -- copy packages (004 Art. 17, 19: copies provided, and recorded) ----------------------

    def write_copy_package(
        self,
        ids: Sequence[int],
        out: Path,
        *,
        purpose: str,
        for_party: str | None,
        request_id: int | None,
        actor: str | None,
        progress: Meter = NULL_METER,
    ) -> PackageWritten:
        """Write a self-verifying copy of recordings `ids` to the folder `out`; keep its record.

        The package is a bag in the disc layout (dockd/archive/__init__.py),
        in a folder: the files under data/ (copied, not linked: each streamed,
        fsynced, read back and compared with the recording's SHA-256), the
        manifests, catalog.json/.csv, the log entries about the recordings
        (naming.py's rule) with their inclusion proofs, the checkpoint and
        keys, verify.py, a Chinese and English README.txt, and bag-info.txt
        naming the purpose, request and party. The finished package is
        checked as its recipient's verify.py will check it; any failure
        removes what was written and raises.

        Then the dock keeps the record of what was handed out (004 Art. 17):
        every file of the package outside data/ (the manifests, bag-info,
        entries, proofs, README, verify.py) and copy.json, under
        `<state>/copies/<package>/`. The recordings' bytes are not copied
        again: the store holds them by the SHA-256 the manifest names. The
        result's package_sha256 (SHA-256 of tagmanifest-sha256.txt) names it.

        Refused (UsageError): `out` not an empty folder or absent, or inside
        the state directory; no ids, unknown or deleted recordings. Neither
        logs nor checks permissions: the access layer does (`access.copied`).
        """
        if self._signer is None:
            raise DockdError("writing a copy package needs a writing service")
        purpose = _clean(purpose, "purpose")
        party = _clean(for_party, "party") if for_party is not None else None
        by = _clean(actor, "actor") if actor is not None else None
        existed = out.exists()
        if existed and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"{out}: must be an empty folder or not exist yet")
        if out.resolve().is_relative_to(self.state_dir.resolve()):
            raise UsageError(f"{out}: a copy package cannot be written into the state directory")
        recordings = self._existing(list(ids))
        gone = [r.id for r in recordings if r.deleted]
        if gone:
            raise UsageError(f"recordings {gone} were deleted by the retention sweep")
        self.checkpoint()  # the entries about them are signed before they are copied
        now = self.clock.now()
        copies = self.state_dir / "copies"
        package = f"COPY-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        package += f"-R{request_id}" if request_id is not None else ""
        name, n = package, 1
        while (copies / name).exists():
            n += 1
            name = f"{package}-{n}"
        extract, payload = self._bag_payload(recordings)
        info = copy_bag_info(
            origin=self.origin, package=name, purpose=purpose, for_party=party,
            request=request_id, by=by, bagging_date=now.date().isoformat(),
        )  # fmt: skip
        total = sum(p.size for p in payload)
        oxum = {**info, "Payload-Oxum": f"{total}.{len(payload)}"}
        tags = self._bag_tags(recordings, extract, copy_readme_bytes(name, oxum))
        try:
            progress.stage("copying and reading back", 2 * total)
            write_bag(
                out, payload, tags, info, validate=False,
                place=lambda item, dest: copy_checked(item, dest, progress.advance),
            )  # fmt: skip
            progress.stage("checking the package as verify.py will", total)
            keys = [k.to_text() for k in self.trusted_keys()]
            checked = standalone_verify.check_bag(str(out), keys, progress.advance)
            if checked.problems:
                raise ArchiveError(
                    f"copy package {out} would not verify: "
                    + "; ".join(str(p) for p in checked.problems[:5])
                )
            package_sha256 = hashlib.sha256((out / TAGMANIFEST).read_bytes()).hexdigest()
            entries = len(_split(tags[ENTRIES]))
            record = {
                "package": name,
                "package_sha256": package_sha256,
                "out": str(out),
                "recordings": [r.id for r in recordings],
                "purpose": purpose,
                "for_party": party,
                "request": request_id,
                "by": by,
                "at": isoformat_utc(now),
                "files": len(payload),
                "bytes": total,
                "entries": entries,
            }
            # Kept before the package is handed back: no copy leaves without its record.
            kept = _keep_record(out, copies, name, record)
        except BaseException:
            _remove_written(out, keep_folder=existed)
            raise
        log.info("copy.written", package=name, sha256=package_sha256, files=len(payload))
        return PackageWritten(str(out), package_sha256, len(payload), total, entries, str(kept))


def _split(raw: bytes) -> list[bytes]:
    return [line for line in raw.split(b"\n") if line]


def _remove_written(out: Path, *, keep_folder: bool) -> None:
    """Remove what a failed copy wrote to `out` (it was absent, or an empty folder)."""
    if not out.exists():
        return
    if not keep_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _keep_record(out: Path, copies: Path, name: str, record: dict[str, Any]) -> Path:
    """`<state>/copies/<name>/`: the package's files outside data/ and copy.json, 0444.

    Written under a temporary name, fsynced, then renamed into place, so a
    record is there whole or not at all.
    """
    copies.mkdir(mode=0o700, exist_ok=True)
    final = copies / name
    part = copies / f".{name}.part"
    shutil.rmtree(part, ignore_errors=True)
    files = {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.relative_to(out).parts[0] != "data"
    }
    files["copy.json"] = (
        json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    ).encode()
    for rel, data in files.items():
        dest = part.joinpath(*rel.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(dest, 0o444)
    for folder, _dirs, _files in os.walk(part, topdown=False):
        fsync_dir(Path(folder))
    os.rename(part, final)
    fsync_dir(copies)
    return final


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
