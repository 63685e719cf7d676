"""`verify_disc` and the disc's verify.py on real images: clean, and tampered with.

Each tampered disc is a real image rebuilt from a changed copy of the
staged bag. Some tamperers are careless (manifests left as they were);
`reseal` plays a careful one who rewrites the manifests and Payload-Oxum,
whom only the log (entries, proofs, signed checkpoint) exposes. Every case
must fail both `verify_disc` and verify.py, naming the kind and the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.archive.bag import ArchiveError
from dockd.archive.check import DiscReport, verify_disc
from dockd.archive.iso import build_iso, extract_iso
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.note import VerifierKey, sign
from dockd.integrity.standalone_verify import catalog_csv
from tests.archive.discs import Dock, Staged, copy_bag, reseal, run_verify_py


def test_clean_image_and_folder(
    staged: Staged, disc_iso: Path, extracted: Path, dock: Dock
) -> None:
    report = verify_disc(disc_iso)
    assert report.ok, report.problems
    assert report.label == report.volume_id == staged.label
    assert report.checkpoint_origin == "dockd/archive-test"
    assert report.entries_proven >= len(staged.records)
    assert sorted((r.bag_path, r.sha256, r.recording_id) for r in report.recordings) == sorted(
        (r["bag_path"], r["sha256"], r["id"]) for r in staged.records
    )
    assert dict(report.info)["dockd-Copy"] == "1 of 2"
    assert json.loads(json.dumps(report.as_json()))["ok"] is True
    folder = verify_disc(extracted, [dock.key])  # a mounted disc, with the dock's own key
    assert folder.ok and folder.volume_id is None and folder.label == staged.label
    with pytest.raises(ArchiveError, match="trusted key"):
        verify_disc(disc_iso, ["garbage"])
    with pytest.raises(ArchiveError, match="no such disc image"):
        verify_disc(disc_iso.with_name("nothing.iso"))


@dataclass(frozen=True)
class Tampered:
    iso: Path
    root: Path  # the image extracted, for verify.py


def _tamper(
    staged: Staged,
    tmp: Path,
    change: Callable[[Path], None],
    *,
    seal: bool = False,
    label: str | None = None,
) -> Tampered:
    bag = copy_bag(staged.bag, tmp / "bag")
    change(bag)
    if seal:
        reseal(bag)
    image = build_iso(bag, tmp / "tampered.iso", label or staged.label)
    return Tampered(image, extract_iso(image, tmp / "extracted"))


def _fails(
    disc: Tampered,
    python: Path,
    kind: str,
    where: str,
    *,
    keys: list[str] | None = None,
    detail: str = "",
) -> DiscReport:
    """Both checkers find `kind` at `where` (with `detail` in the message)."""
    report = verify_disc(disc.iso, keys)
    assert not report.ok
    hits = [p for p in report.problems if p.kind == kind and p.where == where]
    assert hits and detail in hits[0].detail, report.problems
    args = [arg for key in keys or [] for arg in ("--key", key)]
    proc = run_verify_py(python, disc.root, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(ln.startswith(f"{where}: ") and ln.endswith(f"[{kind}]") for ln in lines), lines
    assert lines[-1].endswith("个问题")
    return report


def _first_recording(staged: Staged) -> str:
    return str(staged.records[0]["bag_path"])


def _flip_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_one_changed_byte_in_a_recording(
    staged: Staged, tmp_path: Path, fresh_python: Path
) -> None:
    target = _first_recording(staged)
    disc = _tamper(staged, tmp_path, lambda bag: _flip_byte(bag / target))
    report = _fails(disc, fresh_python, "file_changed", target, detail="manifest-sha256.txt says")
    assert "bag_invalid" in report.kinds()  # bagit-python agrees
    assert len([p for p in report.problems if p.kind == "file_changed"]) == 1


def test_changed_recording_with_rewritten_manifests(
    staged: Staged, tmp_path: Path, fresh_python: Path
) -> None:
    target = _first_recording(staged)
    disc = _tamper(staged, tmp_path, lambda bag: _flip_byte(bag / target), seal=True)
    report = _fails(disc, fresh_python, "file_changed", target, detail="manifest rewritten")
    assert report.kinds() == {"file_changed"}  # bagit-python is satisfied: only the log knows


def test_removed_recording(staged: Staged, tmp_path: Path, fresh_python: Path) -> None:
    target = str(staged.records[-1]["bag_path"])
    disc = _tamper(staged, tmp_path, lambda bag: (bag / target).unlink())
    report = _fails(disc, fresh_python, "file_missing", target, detail="not on the disc")
    assert "bag_invalid" in report.kinds()  # Payload-Oxum and bagit-python


def test_removed_recording_and_its_manifest_line(
    staged: Staged, tmp_path: Path, fresh_python: Path
) -> None:
    target = str(staged.records[-1]["bag_path"])
    disc = _tamper(staged, tmp_path, lambda bag: (bag / target).unlink(), seal=True)
    _fails(disc, fresh_python, "file_missing", target, detail="catalog.json lists recording")


def test_edited_manifest(staged: Staged, tmp_path: Path, fresh_python: Path) -> None:
    target = _first_recording(staged)

    def edit(bag: Path) -> None:
        manifest = bag / "manifest-sha256.txt"
        lines = manifest.read_text("utf-8").splitlines()
        lines = [("0" * 64 + line[64:]) if line.endswith(target) else line for line in lines]
        manifest.write_text("\n".join(lines) + "\n", "utf-8")

    disc = _tamper(staged, tmp_path, edit)
    report = _fails(disc, fresh_python, "manifest_changed", "manifest-sha256.txt")
    details = [p.detail for p in report.problems if p.kind == "manifest_changed"]
    assert any(f"the line for {target} says {'0' * 64}" in d for d in details)
    assert any("tagmanifest-sha256.txt says" in d for d in details)
    assert "file_changed" not in report.kinds()  # the file is as the log recorded it


def test_extra_file(staged: Staged, tmp_path: Path, fresh_python: Path) -> None:
    extra = "data/_unassigned/_unassigned/2026-11-25/99_planted.mp4"

    def plant(bag: Path) -> None:
        (bag / extra).parent.mkdir(parents=True)
        (bag / extra).write_bytes(b"not from any camera")

    disc = _tamper(staged, tmp_path, plant)
    _fails(disc, fresh_python, "file_extra", extra, detail="not listed")
    sealed = _tamper(staged, tmp_path / "sealed", plant, seal=True)
    _fails(sealed, fresh_python, "catalog_mismatch", extra, detail="not described")


def _body(bag: Path) -> Checkpoint:
    note = (bag / "dockd/checkpoint.txt").read_text("utf-8")
    return Checkpoint.from_text(note.rpartition("\n\n")[0] + "\n")


def test_checkpoint_signed_by_another_key(
    staged: Staged, tmp_path: Path, fresh_python: Path, dock: Dock
) -> None:
    attacker = Ed25519PrivateKey.generate()

    def swap(bag: Path) -> None:
        cp = _body(bag)
        (bag / "dockd/checkpoint.txt").write_text(sign(cp.to_text(), cp.origin, attacker))

    disc = _tamper(staged, tmp_path, swap, seal=True)
    _fails(disc, fresh_python, "checkpoint_untrusted", "dockd/checkpoint.txt")

    # The attacker also replaces keys.txt: the disc now agrees with itself, so only a key
    # from an independent copy (here: the dock's) exposes it.
    def swap_both(bag: Path) -> None:
        swap(bag)
        origin = _body(bag).origin
        (bag / "dockd/keys.txt").write_text(VerifierKey.of(origin, attacker).to_text() + "\n")

    both = _tamper(staged, tmp_path / "both", swap_both, seal=True)
    assert verify_disc(both.iso).ok  # self-consistent ...
    _fails(both, fresh_python, "checkpoint_untrusted", "dockd/checkpoint.txt", keys=[dock.key])


def test_checkpoint_of_another_log(
    staged: Staged, tmp_path: Path, fresh_python: Path, dock: Dock
) -> None:
    other = Ed25519PrivateKey.generate()
    foreign = Checkpoint("dockd/another-dock", 3, bytes(range(32)))
    note = sign(foreign.to_text(), "dockd/another-dock", other)
    key = VerifierKey.of("dockd/another-dock", other).to_text()

    def swap(bag: Path) -> None:
        (bag / "dockd/checkpoint.txt").write_text(note)

    disc = _tamper(staged, tmp_path, swap, seal=True)
    report = _fails(disc, fresh_python, "checkpoint_untrusted", "dockd/checkpoint.txt")
    assert "proof_invalid" in report.kinds()

    def swap_with_keys(bag: Path) -> None:
        swap(bag)
        (bag / "dockd/keys.txt").write_text(key + "\n")

    both = _tamper(staged, tmp_path / "both", swap_with_keys, seal=True)
    report = _fails(
        both, fresh_python, "checkpoint_invalid", "dockd/checkpoint.txt", detail="another-dock"
    )
    assert "proof_invalid" in report.kinds()


def test_edited_log_entry(staged: Staged, tmp_path: Path, fresh_python: Path) -> None:
    def edit(bag: Path) -> None:
        path = bag / "dockd/entries.jsonl"
        lines = path.read_bytes().splitlines()
        lines[0] = lines[0].replace(b'"officer":"012345"', b'"officer":"999999"')
        path.write_bytes(b"".join(line + b"\n" for line in lines))

    disc = _tamper(staged, tmp_path, edit, seal=True)
    report = _fails(disc, fresh_python, "proof_invalid", _entry_where(staged, 0))
    assert report.kinds() >= {"proof_invalid", "catalog_mismatch"}


def _entry_where(staged: Staged, index: int) -> str:
    raw = (staged.bag / "dockd/entries.jsonl").read_bytes().splitlines()[index]
    return f"dockd/entries.jsonl line {index + 1} (log entry {json.loads(raw)['seq']})"


def test_removed_log_entry(staged: Staged, tmp_path: Path, fresh_python: Path) -> None:
    record = staged.records[1]
    seq = int(record["log_seq"])

    def drop(bag: Path) -> None:
        path = bag / "dockd/entries.jsonl"
        lines = [ln for ln in path.read_bytes().splitlines() if json.loads(ln)["seq"] != seq]
        path.write_bytes(b"".join(line + b"\n" for line in lines))

    disc = _tamper(staged, tmp_path, drop, seal=True)
    _fails(disc, fresh_python, "entry_missing", str(record["bag_path"]), detail=f"{record['id']}")


def test_catalog_label_changed(staged: Staged, tmp_path: Path, fresh_python: Path) -> None:
    rid = staged.records[0]["id"]

    def relabel(bag: Path) -> None:
        records = json.loads((bag / "dockd/catalog.json").read_text("utf-8"))
        records[0]["officer"] = "999999"
        records[0]["cause"] = "另一案由"
        (bag / "dockd/catalog.json").write_text(json.dumps(records, ensure_ascii=False))
        (bag / "dockd/catalog.csv").write_bytes(catalog_csv(records))

    disc = _tamper(staged, tmp_path, relabel, seal=True)
    report = _fails(
        disc, fresh_python, "catalog_mismatch", f"dockd/catalog.json recording {rid}", detail=""
    )
    details = " | ".join(p.detail for p in report.problems)
    assert '"officer" ' not in details and 'officer is "999999", the log entries say "012345"' in (
        details
    )
    assert 'cause is "另一案由", the log entries say "占道经营"' in details


def test_catalog_csv_disagreeing_with_json(
    staged: Staged, tmp_path: Path, fresh_python: Path
) -> None:
    def edit(bag: Path) -> None:
        path = bag / "dockd/catalog.csv"
        path.write_bytes(path.read_bytes().replace("占道经营".encode(), "无".encode(), 1))

    disc = _tamper(staged, tmp_path, edit, seal=True)
    _fails(disc, fresh_python, "catalog_mismatch", "dockd/catalog.csv", detail="at line 2")


def test_edited_tag_file_and_volume_label(
    staged: Staged, tmp_path: Path, fresh_python: Path
) -> None:
    def edit(bag: Path) -> None:
        (bag / "README.txt").write_bytes(b"nothing to see here\n")

    disc = _tamper(staged, tmp_path, edit, label="SOME_OTHER_DISC")
    report = _fails(disc, fresh_python, "tagmanifest_changed", "README.txt")
    labels = [p for p in report.problems if "volume id" in p.detail]
    assert labels and labels[0].kind == "bag_invalid"
