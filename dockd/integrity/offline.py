"""Offline verifier of a `dockd log export` folder.

    python -m dockd.integrity.offline OUT [--key NAME+ID+KEY ...]

Needs no dockd state: only this folder, the standard library and the
`cryptography` package (of dockd it imports only the pure format modules
merkle, note and checkpoint, and the error types). It checks:

  1. checkpoint.txt is a C2SP signed note by one of the keys (keys.txt, or
     the --key values, which an auditor should take from an independent
     copy: a court file, an earlier disc) and a valid tlog-checkpoint;
  2. every entry in entries.jsonl hashes, with its inclusion proof in
     proofs.json, to the checkpoint's root (RFC 9162);
  3. the entries are canonical JSON, numbered without gaps, and each one's
     `prev` is the SHA-256 of the one before.

Exit 0 if everything holds, 1 with each problem on its own line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.merkle import leaf_hash, verify_inclusion
from dockd.integrity.note import NoteError, VerifierKey, open_note


def _canonical(raw: bytes) -> bool:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    again = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return again.encode("utf-8") == raw


def verify_export(folder: Path, pinned: list[str] | None = None) -> list[str]:
    """Every problem found in the export at `folder`; empty means intact."""
    problems: list[str] = []
    try:
        key_texts = pinned or (folder / "keys.txt").read_text("utf-8").split()
        keys = [VerifierKey.from_text(t) for t in key_texts]
        note = (folder / "checkpoint.txt").read_text("utf-8")
        proofs = json.loads((folder / "proofs.json").read_text("utf-8"))
        lines = (folder / "entries.jsonl").read_bytes().split(b"\n")
    except (OSError, ValueError, NoteError) as exc:
        return [f"export: cannot read the export: {exc}"]
    try:
        checkpoint = Checkpoint.from_text(open_note(note, keys).text)
    except (NoteError, CheckpointError) as exc:
        return [f"checkpoint.txt: {exc}"]
    if lines and lines[-1] == b"":
        lines.pop()
    first = int(proofs.get("from", 1))
    if int(proofs.get("tree_size", -1)) != checkpoint.size:
        problems.append("proofs.json: tree_size differs from the checkpoint's")
    paths = proofs.get("inclusion", [])
    if len(paths) != len(lines):
        problems.append(f"proofs.json: {len(paths)} proofs for {len(lines)} entries")
    prev = proofs.get("prev_of_first")
    for offset, raw in enumerate(lines):
        seq = first + offset
        where = f"entries.jsonl line {offset + 1} (log entry {seq})"
        if not _canonical(raw):
            problems.append(f"{where}: not canonical JSON")
            continue
        entry = json.loads(raw)
        if entry.get("seq") != seq:
            problems.append(f"{where}: says seq {entry.get('seq')}")
        if prev is not None and entry.get("prev") != prev:
            problems.append(f"{where}: prev is not the hash of the entry before it")
        prev = hashlib.sha256(raw).hexdigest()
        if seq > checkpoint.size:
            problems.append(f"{where}: beyond the checkpoint's size {checkpoint.size}")
            continue
        try:
            path = [base64.b64decode(h, validate=True) for h in paths[offset]]
        except (IndexError, ValueError):
            problems.append(f"{where}: no usable inclusion proof")
            continue
        if not verify_inclusion(seq - 1, checkpoint.size, leaf_hash(raw), path, checkpoint.root):
            problems.append(f"{where}: not included in the signed tree (changed, moved or forged)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dockd.integrity.offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--key", action="append", help="trusted verifier key (repeatable)")
    args = parser.parse_args(argv)
    problems = verify_export(args.folder, args.key)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.folder}: OK: every entry is in the signed log")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
